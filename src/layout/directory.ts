/**
 * An OCI image layout as a directory (image-spec image-layout.md): a Target (fetch, exists, push,
 * resolve, tag) whose writes are atomic. Blobs are streamed into `ingest/` (a directory the layout
 * allows beside `blobs/`, as oras-go's OCI store does), verified for size and digest, fsynced and
 * renamed into `blobs/<alg>/<hex>`; so `blobs/` only ever holds complete, verified content.
 * index.json is rewritten through a temp file and a rename.
 *
 * One process at a time: tag() serialises index.json updates within this instance only.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { AirlockError, errorLine } from '../errors.js';
import { digestAlgorithm, digestHex, isDigest, VerifyingStream } from '../oci/digest.js';
import { Annotation, isIndex, parseManifest, type Descriptor, type ImageIndex } from '../oci/manifest.js';
import { MAX_MANIFEST_BYTES, MediaType } from '../oci/media-types.js';
import { toReadable } from '../content/read.js';
import type { OpOptions, Target } from '../content/storage.js';
import { encodeJsonIndex, INDEX_FILE, ioError, LAYOUT_VERSION, OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE } from './format.js';
import { writeFileAtomic } from './writer.js';

export interface DirectoryStoreOptions {
  /** create the layout (oci-layout, an empty index.json, blobs/) when it does not exist; default false */
  create?: boolean;
}

export class DirectoryStore implements Target {
  readonly root: string;
  #index: ImageIndex;
  #indexLock: Promise<void> = Promise.resolve();

  private constructor(root: string, index: ImageIndex) {
    this.root = root;
    this.#index = index;
  }

  static async open(root: string, opts: DirectoryStoreOptions = {}): Promise<DirectoryStore> {
    const dir = path.resolve(root);
    const layoutFile = path.join(dir, OCI_LAYOUT_FILE);
    let layout: Buffer | undefined;
    try {
      layout = await fsp.readFile(layoutFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, layoutFile, 'reading');
    }
    if (layout === undefined) {
      if (!opts.create) throw new AirlockError('NOT_FOUND', `${dir}: not an OCI image layout (no ${OCI_LAYOUT_FILE})`, { side: 'local' });
      try {
        await fsp.mkdir(path.join(dir, 'blobs'), { recursive: true });
      } catch (e) {
        throw ioError(e, dir, 'creating the layout directory');
      }
      await writeFileAtomic(path.join(dir, INDEX_FILE), encodeJsonIndex([]));
      // oci-layout last: its presence marks a complete layout.
      await writeFileAtomic(layoutFile, OCI_LAYOUT_BYTES);
      return new DirectoryStore(dir, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
    }
    let version: unknown;
    try {
      version = (JSON.parse(layout.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      version = undefined;
    }
    if (version !== LAYOUT_VERSION) {
      throw new AirlockError('ARCHIVE', `${layoutFile}: unknown oci-layout version ${JSON.stringify(version)} (expected ${LAYOUT_VERSION})`, {
        side: 'local',
      });
    }
    return new DirectoryStore(dir, await readIndex(dir));
  }

  get index(): ImageIndex {
    return this.#index;
  }

  blobFile(desc: Pick<Descriptor, 'digest'>): string {
    if (!isDigest(desc.digest)) throw new AirlockError('DIGEST', `"${String(desc.digest).slice(0, 100)}" is not a valid digest`);
    return path.join(this.root, 'blobs', digestAlgorithm(desc.digest), digestHex(desc.digest));
  }

  async exists(desc: Descriptor, _options?: OpOptions): Promise<boolean> {
    try {
      return (await fsp.stat(this.blobFile(desc))).isFile();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw ioError(e, this.blobFile(desc), 'checking');
    }
  }

  async fetch(desc: Descriptor, options: OpOptions = {}): Promise<Readable> {
    const file = this.blobFile(desc);
    let size: number;
    try {
      size = (await fsp.stat(file)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new AirlockError('NOT_FOUND', `${this.root}: blob ${desc.digest} is not in the layout`, { side: 'local' });
      }
      throw ioError(e, file, 'reading');
    }
    if (size !== desc.size) {
      throw new AirlockError('SIZE_MISMATCH', `${file} is ${size} bytes, but the descriptor says ${desc.size}`, { side: 'local' });
    }
    const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: file, side: 'local' });
    const source = createReadStream(file, options.signal ? { signal: options.signal } : {});
    source.on('error', (e) => verifier.destroy(e));
    return source.pipe(verifier);
  }

  /** Stream `content` into the layout; it becomes visible under blobs/ only once verified. */
  async push(desc: Descriptor, content: Readable | Uint8Array, options: OpOptions = {}): Promise<void> {
    const file = this.blobFile(desc);
    if (await this.exists(desc)) {
      // Content-addressed: the same digest is the same bytes. Drop the duplicate stream.
      if (!(content instanceof Uint8Array)) content.destroy();
      return;
    }
    const ingest = path.join(this.root, 'ingest');
    const tmp = path.join(ingest, `${digestHex(desc.digest).slice(0, 16)}-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.mkdir(ingest, { recursive: true });
      await fsp.mkdir(path.dirname(file), { recursive: true });
      // Open the temp file before anything can fail, so the cleanup below always finds it
      // (a lazily opened write stream can create it after a fast failure was cleaned up).
      const fh = await fsp.open(tmp, 'wx', 0o644);
      try {
        const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}`, side: 'local' });
        const source = toReadable(content);
        pipeline(source, verifier, options.signal ? { signal: options.signal } : {}).catch(() => {});
        // The verifier errors instead of ending when size or digest differ, so a bad blob never
        // reaches the rename below.
        let position = 0;
        for await (const chunk of verifier) {
          const b = chunk as Buffer;
          let off = 0;
          while (off < b.length) {
            const { bytesWritten } = await fh.write(b, off, b.length - off, position);
            off += bytesWritten;
            position += bytesWritten;
          }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, file);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      if (e instanceof AirlockError) throw e;
      if ((e as Error).name === 'AbortError') throw new AirlockError('ABORTED', `writing ${desc.digest} to ${this.root} was cancelled`, { cause: e });
      throw ioError(e, tmp, `writing blob ${desc.digest}`);
    }
  }

  /** By `org.opencontainers.image.ref.name`, else a digest listed in index.json. */
  async resolve(reference: string, _options?: OpOptions): Promise<Descriptor> {
    const d =
      this.#index.manifests.find((m) => m.annotations?.[Annotation.RefName] === reference) ??
      (isDigest(reference) ? this.#index.manifests.find((m) => m.digest === reference) : undefined);
    if (!d) throw new AirlockError('NOT_FOUND', `${this.root}: index.json has no manifest named ${reference}`, { side: 'local' });
    return d;
  }

  /**
   * List `desc` in index.json under `org.opencontainers.image.ref.name` = `tag`, replacing an
   * earlier entry with that name (image-spec image-layout.md#indexjson-file).
   */
  async tag(desc: Descriptor, bytes: Uint8Array, tag: string, _options?: OpOptions): Promise<void> {
    if (!(await this.exists(desc))) await this.push(desc, bytes);
    const run = this.#indexLock.then(async () => {
      const manifests = this.#index.manifests.filter((m) => m.annotations?.[Annotation.RefName] !== tag);
      manifests.push({ ...desc, annotations: { ...(desc.annotations ?? {}), [Annotation.RefName]: tag } });
      await writeFileAtomic(path.join(this.root, INDEX_FILE), encodeJsonIndex(manifests));
      this.#index = { ...this.#index, manifests };
    });
    this.#indexLock = run.catch(() => {});
    await run;
  }
}

async function readIndex(dir: string): Promise<ImageIndex> {
  const file = path.join(dir, INDEX_FILE);
  let bytes: Buffer;
  try {
    const st = await fsp.stat(file);
    if (st.size > MAX_MANIFEST_BYTES) throw new AirlockError('ARCHIVE', `${file} is over the ${MAX_MANIFEST_BYTES}-byte limit`, { side: 'local' });
    bytes = await fsp.readFile(file);
  } catch (e) {
    if (e instanceof AirlockError) throw e;
    throw ioError(e, file, 'reading');
  }
  let m;
  try {
    m = parseManifest(bytes, { what: file, mediaType: MediaType.OciIndex });
  } catch (e) {
    throw new AirlockError('ARCHIVE', errorLine(e), { cause: e, side: 'local' });
  }
  if (!isIndex(m)) throw new AirlockError('ARCHIVE', `${file} is not an image index`, { side: 'local' });
  return m;
}
