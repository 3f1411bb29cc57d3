import { createHash, type Hash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirlockError } from '../errors.js';
import { type Digest, digestAlgorithm, digestHex, isDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { referrerDescriptor } from '../oci/referrers.js';
import { MediaType } from '../oci/media-types.js';
import type { BlobRead, BlobStat, ByteRange, PutManifestResult, StoredManifest, WritableBackend } from './backend.js';
import { TAG_RE } from './backend.js';
import { DistributionError } from './errors.js';
import { KeyedMutex } from './mutex.js';
import { checkManifest, parseReference, requiredChildren } from './validate.js';

/**
 * On-disk layout (docs/serve.md):
 *   oci-layout, index.json           an OCI image layout (image-spec image-layout.md)
 *   blobs/<alg>/<hex>                every blob and manifest, shared by all repositories
 *   repositories/<name>/_blobs/<alg>/<hex>       link: blob is in the repository
 *   repositories/<name>/_manifests/<alg>/<hex>   link: {"mediaType","size"} of a manifest
 *   repositories/<name>/_tags/<tag>              the digest the tag points at
 *   repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>   a referrer's descriptor
 *   uploads/<uuid>, uploads/<uuid>.repo          upload sessions
 *   tmp/                                         temp files, renamed into place
 * Repository path components cannot start with "_" (the <name> grammar), so the
 * metadata directories never collide with a nested repository.
 * Every file appears by rename, so a reader sees either the old or the new content.
 */
interface ManifestLink {
  mediaType: string;
  size: number;
}

interface UploadHash {
  hash: Hash;
  /** bytes fed to `hash`; compared with the file size before the hash is trusted */
  size: number;
}

export class DirectoryBackend implements WritableBackend {
  readonly root: string;
  readonly #mutex = new KeyedMutex();
  readonly #uploadHashes = new Map<string, UploadHash>();

  private constructor(root: string) {
    this.root = root;
  }

  /** Open (creating if needed) a storage directory. */
  static async open(root: string): Promise<DirectoryBackend> {
    const b = new DirectoryBackend(path.resolve(root));
    try {
      for (const d of ['blobs/sha256', 'blobs/sha512', 'repositories', 'uploads', 'tmp']) {
        await fs.mkdir(path.join(b.root, d), { recursive: true });
      }
      if (!(await exists(path.join(b.root, 'oci-layout')))) {
        await b.#writeAtomic(path.join(b.root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      }
      await b.#sweepTmp();
      if (!(await exists(path.join(b.root, 'index.json')))) {
        await b.#writeAtomic(path.join(b.root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }));
      }
    } catch (e) {
      throw new AirlockError('IO', `cannot prepare the registry storage at ${b.root}: ${(e as Error).message}; check the path and its permissions`, { cause: e, side: 'local' });
    }
    return b;
  }

  /**
   * Remove temp files left by a crash. Only old ones: another server process on the
   * same root (a read-only one, say) may be writing a fresh one right now.
   */
  async #sweepTmp(): Promise<void> {
    const dir = path.join(this.root, 'tmp');
    const cutoff = Date.now() - 60 * 60 * 1000;
    for (const n of await fs.readdir(dir)) {
      try {
        const st = await fs.stat(path.join(dir, n));
        if (st.mtimeMs < cutoff) await fs.rm(path.join(dir, n), { force: true });
      } catch {
        // vanished meanwhile: renamed into place by its writer
      }
    }
  }

  // ---- paths

  #blobPath(d: Digest): string {
    return path.join(this.root, 'blobs', digestAlgorithm(d), digestHex(d));
  }

  #repoDir(repo: string): string {
    return path.join(this.root, 'repositories', ...repo.split('/'));
  }

  #link(repo: string, kind: '_blobs' | '_manifests', d: Digest): string {
    return path.join(this.#repoDir(repo), kind, digestAlgorithm(d), digestHex(d));
  }

  #tagPath(repo: string, tag: string): string {
    return path.join(this.#repoDir(repo), '_tags', tag);
  }

  #referrersDir(repo: string, subject: Digest): string {
    return path.join(this.#repoDir(repo), '_referrers', digestAlgorithm(subject), digestHex(subject));
  }

  #referrerPath(repo: string, subject: Digest, referrer: Digest): string {
    return path.join(this.#referrersDir(repo, subject), `${digestAlgorithm(referrer)}-${digestHex(referrer)}`);
  }

  #uploadPath(id: string): string {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown`);
    return path.join(this.root, 'uploads', id);
  }

  /** temp file + rename: readers never see a half-written file. */
  async #writeAtomic(target: string, data: string | Buffer): Promise<void> {
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(this.root, 'tmp', randomUUID());
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.rename(tmp, target);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }

  // ---- reads

  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      if (entries.some((e) => e.name === '_manifests' || e.name === '_blobs')) out.push(prefix);
      for (const e of entries) {
        if (e.isDirectory() && !e.name.startsWith('_')) await walk(path.join(dir, e.name), prefix === '' ? e.name : `${prefix}/${e.name}`);
      }
    };
    await walk(path.join(this.root, 'repositories'), '');
    return out.filter((r) => r !== '').sort(compare);
  }

  async tags(repo: string): Promise<string[] | undefined> {
    if (!(await exists(this.#repoDir(repo)))) return undefined;
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.#repoDir(repo), '_tags'));
    } catch {
      names = [];
    }
    return names.filter((t) => TAG_RE.test(t)).sort(compare);
  }

  async statBlob(repo: string, digest: Digest): Promise<BlobStat | undefined> {
    if (!(await exists(this.#link(repo, '_blobs', digest))) && !(await exists(this.#link(repo, '_manifests', digest)))) return undefined;
    try {
      const st = await fs.stat(this.#blobPath(digest));
      return { digest, size: st.size };
    } catch {
      return undefined;
    }
  }

  async readBlob(repo: string, digest: Digest, range?: ByteRange): Promise<BlobRead | undefined> {
    const st = await this.statBlob(repo, digest);
    if (!st) return undefined;
    // Blobs are never rewritten in place (content-addressed, renamed into place), so
    // a stream opened now reads exactly the bytes that were verified on the way in.
    const stream = createReadStream(this.#blobPath(digest), range ? { start: range.start, end: range.end } : {});
    return { ...st, stream };
  }

  async #manifestLink(repo: string, digest: Digest): Promise<ManifestLink | undefined> {
    try {
      const v = JSON.parse(await fs.readFile(this.#link(repo, '_manifests', digest), 'utf8')) as ManifestLink;
      return typeof v.mediaType === 'string' && typeof v.size === 'number' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  async #resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    try {
      const d = (await fs.readFile(this.#tagPath(repo, tag), 'utf8')).trim();
      return isDigest(d) ? d : undefined;
    } catch {
      return undefined;
    }
  }

  async getManifest(repo: string, reference: string): Promise<StoredManifest | undefined> {
    const ref = parseReference(reference);
    const digest = 'digest' in ref ? ref.digest : await this.#resolveTag(repo, ref.tag);
    if (digest === undefined) return undefined;
    const link = await this.#manifestLink(repo, digest);
    if (!link) return undefined;
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(this.#blobPath(digest));
    } catch {
      return undefined;
    }
    return { digest, mediaType: link.mediaType, bytes };
  }

  async referrers(repo: string, subject: Digest): Promise<Descriptor[]> {
    const dir = this.#referrersDir(repo, subject);
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return [];
    }
    const out: Descriptor[] = [];
    for (const n of names.sort(compare)) {
      try {
        const desc = JSON.parse(await fs.readFile(path.join(dir, n), 'utf8')) as Descriptor;
        // the entry is written after the manifest link and removed before it, but a
        // crash in between must not list a referrer that cannot be fetched
        if (await this.#manifestLink(repo, desc.digest)) out.push(desc);
      } catch {
        // a vanished entry (concurrent delete): skip
      }
    }
    return out;
  }

  // ---- uploads

  async startUpload(repo: string): Promise<string> {
    const id = randomUUID();
    await this.#writeAtomic(`${this.#uploadPath(id)}.repo`, repo);
    await this.#writeAtomic(this.#uploadPath(id), Buffer.alloc(0));
    this.#uploadHashes.set(id, { hash: createHash('sha256'), size: 0 });
    return id;
  }

  async #checkUpload(repo: string, id: string): Promise<number> {
    const p = this.#uploadPath(id);
    let owner: string;
    try {
      owner = await fs.readFile(`${p}.repo`, 'utf8');
    } catch {
      throw new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown or finished`);
    }
    if (owner !== repo) throw new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id} does not belong to ${repo}`);
    try {
      return (await fs.stat(p)).size;
    } catch {
      throw new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown or finished`);
    }
  }

  async uploadSize(repo: string, id: string): Promise<number | undefined> {
    try {
      return await this.#checkUpload(repo, id);
    } catch (e) {
      if (e instanceof DistributionError && e.specCode === 'BLOB_UPLOAD_UNKNOWN') return undefined;
      throw e;
    }
  }

  async appendUpload(repo: string, id: string, body: Readable, offset?: number): Promise<number> {
    return this.#mutex.run(`upload:${id}`, () => this.#append(repo, id, body, offset));
  }

  async #append(repo: string, id: string, body: Readable, offset?: number): Promise<number> {
    const size = await this.#checkUpload(repo, id);
    if (offset !== undefined && offset !== size) {
      body.resume();
      throw new DistributionError('BLOB_UPLOAD_INVALID', `chunk starts at ${offset} but upload ${id} has ${size} bytes; resume at ${size}`, {
        status: 416,
        detail: { size },
      });
    }
    let state = this.#uploadHashes.get(id);
    if (state && state.size !== size) state = undefined;
    if (!state && size === 0) state = { hash: createHash('sha256'), size: 0 };
    const tap = state ? new HashTap(state) : undefined;
    if (state) this.#uploadHashes.set(id, state);
    else this.#uploadHashes.delete(id);
    const out = createWriteStream(this.#uploadPath(id), { flags: 'a' });
    // Streamed straight to the file: memory does not grow with the chunk size.
    if (tap) await pipeline(body, tap, out);
    else await pipeline(body, out);
    return (await fs.stat(this.#uploadPath(id))).size;
  }

  async completeUpload(repo: string, id: string, digest: Digest, body?: Readable): Promise<BlobStat> {
    return this.#mutex.run(`upload:${id}`, async () => {
      const size = body ? await this.#append(repo, id, body) : await this.#checkUpload(repo, id);
      const p = this.#uploadPath(id);
      const actual = await this.#uploadDigest(id, p, size, digestAlgorithm(digest));
      if (actual !== digest) {
        await this.#dropUpload(id);
        throw new DistributionError('DIGEST_INVALID', `uploaded content hashes to ${actual}, not ${digest}`, { detail: { digest } });
      }
      const target = this.#blobPath(digest);
      // rename is atomic: two clients finishing the same blob each rename identical bytes
      await fs.rename(p, target);
      await this.#dropUpload(id);
      await this.#linkBlob(repo, digest);
      return { digest, size };
    });
  }

  async #uploadDigest(id: string, file: string, size: number, alg: 'sha256' | 'sha512'): Promise<Digest> {
    const state = this.#uploadHashes.get(id);
    if (alg === 'sha256' && state && state.size === size) return `sha256:${state.hash.digest('hex')}` as Digest;
    // after a restart (or a failed chunk) the running hash is gone: hash the file, streamed
    const h = createHash(alg);
    await pipeline(createReadStream(file), new HashTap({ hash: h, size: 0 }), async (src: AsyncIterable<Buffer>) => {
      for await (const _ of src) void _;
    });
    return `${alg}:${h.digest('hex')}` as Digest;
  }

  async #dropUpload(id: string): Promise<void> {
    this.#uploadHashes.delete(id);
    const p = this.#uploadPath(id);
    await fs.rm(p, { force: true });
    await fs.rm(`${p}.repo`, { force: true });
  }

  async cancelUpload(repo: string, id: string): Promise<boolean> {
    return this.#mutex.run(`upload:${id}`, async () => {
      if ((await this.uploadSize(repo, id)) === undefined) return false;
      await this.#dropUpload(id);
      return true;
    });
  }

  async #linkBlob(repo: string, digest: Digest): Promise<void> {
    await this.#writeAtomic(this.#link(repo, '_blobs', digest), digest);
  }

  async mountBlob(repo: string, from: string | undefined, digest: Digest): Promise<boolean> {
    const known = from === undefined ? await exists(this.#blobPath(digest)) : (await this.statBlob(from, digest)) !== undefined;
    if (!known) return false;
    await this.#linkBlob(repo, digest);
    return true;
  }

  async deleteBlob(repo: string, digest: Digest): Promise<boolean> {
    // The shared blob stays (another repository may link it); only this link goes.
    try {
      await fs.rm(this.#link(repo, '_blobs', digest));
      return true;
    } catch {
      return false;
    }
  }

  // ---- manifests

  async putManifest(repo: string, reference: string, bytes: Buffer, contentType: string | undefined): Promise<PutManifestResult> {
    const { manifest, mediaType, digest } = checkManifest(bytes, contentType, reference);
    const ref = parseReference(reference);
    const need = requiredChildren(manifest);
    const missing: string[] = [];
    for (const d of need.blobs) if (!(await this.statBlob(repo, d.digest))) missing.push(d.digest);
    for (const d of need.manifests) if (!(await this.#manifestLink(repo, d.digest))) missing.push(d.digest);
    if (missing.length > 0) {
      throw new DistributionError('MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length} unknown blob(s) or manifest(s) in ${repo}, first ${missing[0]}; push them first`, {
        detail: { digest: missing[0] },
      });
    }
    if (!(await exists(this.#blobPath(digest)))) await this.#writeAtomic(this.#blobPath(digest), bytes);
    const subject = manifest.subject?.digest;
    await this.#mutex.run(`repo:${repo}`, async () => {
      await this.#writeAtomic(this.#link(repo, '_manifests', digest), JSON.stringify({ mediaType, size: bytes.byteLength } satisfies ManifestLink));
      if ('tag' in ref) await this.#writeAtomic(this.#tagPath(repo, ref.tag), digest);
      if (subject !== undefined) {
        // one file per referrer: concurrent pushes of referrers never overwrite each other
        const desc = referrerDescriptor(manifest, digest, bytes.byteLength, mediaType);
        await this.#writeAtomic(this.#referrerPath(repo, subject, digest), JSON.stringify(desc));
      }
    });
    return subject === undefined ? { digest } : { digest, subject };
  }

  async deleteManifest(repo: string, reference: string): Promise<boolean> {
    const ref = parseReference(reference);
    return this.#mutex.run(`repo:${repo}`, async () => {
      if ('tag' in ref) {
        try {
          await fs.rm(this.#tagPath(repo, ref.tag));
          return true;
        } catch {
          return false;
        }
      }
      const stored = await this.getManifest(repo, ref.digest);
      if (!stored) return false;
      let subject: Digest | undefined;
      try {
        const v = JSON.parse(stored.bytes.toString('utf8')) as { subject?: { digest?: unknown } };
        if (typeof v.subject?.digest === 'string' && isDigest(v.subject.digest)) subject = v.subject.digest;
      } catch {
        // stored bytes were validated on push; nothing to do
      }
      if (subject !== undefined) await fs.rm(this.#referrerPath(repo, subject, ref.digest), { force: true });
      for (const tag of (await this.tags(repo)) ?? []) {
        if ((await this.#resolveTag(repo, tag)) === ref.digest) await fs.rm(this.#tagPath(repo, tag), { force: true });
      }
      await fs.rm(this.#link(repo, '_manifests', ref.digest), { force: true });
      return true;
    });
  }
}

class HashTap extends Transform {
  readonly #state: UploadHash;
  constructor(state: UploadHash) {
    super();
    this.#state = state;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#state.hash.update(chunk);
    this.#state.size += chunk.length;
    cb(null, chunk);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Lexical order by code unit, as distribution-spec asks of tag and catalog listings. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
