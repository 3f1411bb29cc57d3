/**
 * The archive writer: one uncompressed tar holding an OCI image layout, written as a stream.
 *
 * The caller discovers the whole graph first (manifests are small and held in memory, blob
 * descriptors come from the manifests), so `index.json` is known before any layer is streamed
 * and can sit second in the tar, right after `oci-layout` (docs/archive-format.md).
 *
 * Determinism: every header has uid/gid 0, empty uname/gname, mode 0644, the same mtime
 * (SOURCE_DATE_EPOCH), type "file"; tar-stream writes ustar headers and falls back to a pax
 * header carrying only `path` for names over 100 bytes (sha512 blobs). With the same entries
 * added in the same order, the bytes are the same.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { pack as tarPack, type Pack } from 'tar-stream';
import { AirlockError, isAirlockError } from '../errors.js';
import { isDigest, VerifyingStream } from '../oci/digest.js';
import { isIndex, parseManifest, type Descriptor } from '../oci/manifest.js';
import { isManifestMediaType, MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { toReadable } from '../content/read.js';
import { TAR_TRAILER_BYTES, writeEntriesAt, type PositionalItem } from './positional.js';
import {
  archiveMtime,
  blobPath,
  INDEX_FILE,
  ioError,
  isNonDistributable,
  OCI_LAYOUT_BYTES,
  OCI_LAYOUT_FILE,
} from './format.js';

export interface LayoutWriterOptions {
  /** the final archive FILE; the writer works in FILE.partial and renames it when complete */
  path: string;
  /** seconds since the epoch stamped on every entry; default SOURCE_DATE_EPOCH, else now */
  mtime?: number;
  signal?: AbortSignal;
  /**
   * When true (the default), finish() refuses to complete an archive that lacks a descriptor listed
   * in index.json, or the config or a layer of an image manifest that was added. Children of an image
   * index are not required: pack may filter platforms (the inventory says which it skipped).
   */
  requireComplete?: boolean;
}

export interface ArchiveResult {
  path: string;
  /** hex sha256 of the whole archive file, as written to FILE.sha256 */
  sha256: string;
  size: number;
}

type State = 'created' | 'open' | 'positional' | 'finishing' | 'finished' | 'failed';

export interface ConcurrentBlob {
  desc: Descriptor;
  /** open the blob's content; the stream must error unless size and digest match (the registry client's fetch does) */
  open: (signal: AbortSignal) => Promise<Readable>;
}

export interface AddBlobsOptions {
  /** bodies fetched and written at once (default 4) */
  concurrency?: number;
  onBlob?: (desc: Descriptor) => void;
  /** turn one blob's failure into the error to report (which blob, which side) */
  describe?: (desc: Descriptor, e: unknown) => unknown;
}

export class ArchiveWriter {
  readonly #path: string;
  readonly #partial: string;
  readonly #mtime: Date;
  readonly #requireComplete: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #fh: FileHandle;
  readonly #pack: Pack;
  readonly #hash: Hash = createHash('sha256');
  #written = 0;
  #state: State = 'created';
  #failure: unknown;
  /** resolves when everything the pack produced is on disk (or rejects with the write error) */
  readonly #pump: Promise<void>;
  /** serialises addBlob: a tar entry must be complete before the next one starts */
  #queue: Promise<void> = Promise.resolve();
  readonly #added = new Set<string>();
  /** digests reachable from index.json and from the manifests added, for the completeness check */
  readonly #wanted = new Map<string, Descriptor>();
  #current: Readable | undefined;
  /** set by addBlobs: the archive was completed with positional writes, this is its sha256 */
  #positionalSha256: string | undefined;
  readonly #onAbort = (): void => {
    void this.#fail(new AirlockError('ABORTED', `writing ${this.#path} was cancelled`, { side: 'local' })).catch(() => {});
  };

  private constructor(file: string, fh: FileHandle, mtime: number, opts: LayoutWriterOptions) {
    this.#path = file;
    this.#partial = `${file}.partial`;
    this.#fh = fh;
    this.#mtime = new Date(mtime * 1000);
    this.#requireComplete = opts.requireComplete ?? true;
    this.#signal = opts.signal;
    this.#pack = tarPack();
    // Errors reach us through the pump's iteration; see #runPump.
    this.#pack.on('error', () => {});
    this.#pump = this.#runPump();
    // The pump's failure is reported through #fail/finish; never as an unhandled rejection.
    this.#pump.catch(() => {});
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Open FILE.partial exclusively (a second writer, or a crashed one's leftovers, is an error); write nothing yet. */
  static async create(opts: LayoutWriterOptions): Promise<ArchiveWriter> {
    const file = path.resolve(opts.path);
    const mtime = archiveMtime(opts.mtime);
    if (opts.signal?.aborted) throw new AirlockError('ABORTED', `writing ${file} was cancelled`, { side: 'local' });
    const partial = `${file}.partial`;
    let fh: FileHandle;
    try {
      fh = await fsp.open(partial, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new AirlockError(
          'IO',
          `${partial} already exists: another airlock is writing this archive, or a previous run was interrupted; remove it and retry`,
          { cause: e, side: 'local' },
        );
      }
      throw ioError(e, partial, 'creating the archive');
    }
    return new ArchiveWriter(file, fh, mtime, opts);
  }

  get path(): string {
    return this.#path;
  }

  /** Bytes written to FILE.partial so far. */
  get bytesWritten(): number {
    return this.#written;
  }

  /** Write `oci-layout`, then `index.json` (image-spec image-layout.md). Must come before any blob. */
  async writeHeader(index: Uint8Array): Promise<void> {
    this.#assertState('created', 'writeHeader');
    let parsed;
    try {
      parsed = parseManifest(index, { what: 'index.json' });
    } catch (e) {
      await this.#fail(e);
      throw new AirlockError('INTERNAL', `index.json for ${this.#path} is invalid: ${(e as Error).message}`, { cause: e });
    }
    if (!isIndex(parsed)) {
      const e = new AirlockError('INTERNAL', `index.json for ${this.#path} is not an image index`);
      await this.#fail(e);
      throw e;
    }
    this.#state = 'open';
    for (const d of parsed.manifests) this.#want(d);
    await this.#run(async () => {
      await this.#entry(OCI_LAYOUT_FILE, Buffer.from(OCI_LAYOUT_BYTES));
      await this.#entry(INDEX_FILE, Buffer.from(index.buffer, index.byteOffset, index.byteLength));
    });
  }

  /**
   * Stream one blob into the archive as `blobs/<alg>/<hex>`, checking size and digest while writing.
   * A failure (short, long or wrong content, a source error, a full disk) aborts the whole archive:
   * a tar cannot be rewound. Adding a digest that is already in the archive is a no-op.
   */
  async addBlob(desc: Descriptor, content: Readable | Uint8Array): Promise<void> {
    try {
      if (!isDigest(desc.digest) || !Number.isSafeInteger(desc.size) || desc.size < 0) {
        throw new AirlockError('INTERNAL', `addBlob: descriptor ${String(desc.digest)} (${desc.size} bytes) is not valid`);
      }
      this.#assertState('open', 'addBlob');
    } catch (e) {
      // We own the stream once it is handed to us: do not leave a registry response dangling.
      if (!(content instanceof Uint8Array)) content.destroy();
      throw e;
    }
    if (this.#added.has(desc.digest)) {
      if (!(content instanceof Uint8Array)) content.destroy();
      return;
    }
    this.#added.add(desc.digest);
    await this.#run(async () => {
      const source = toReadable(content);
      const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}`, side: 'source' });
      this.#current = source;
      pipeline(source, verifier, () => {});
      // Manifests are small: keep a copy to learn what they point to, for the completeness check.
      const keep = isManifestMediaType(desc.mediaType) && desc.size <= MAX_MANIFEST_BYTES ? ([] as Buffer[]) : undefined;
      await this.#streamEntry(blobPath(desc.digest), desc.size, verifier, keep);
      this.#current = undefined;
      if (keep) {
        const m = parseManifest(Buffer.concat(keep), { mediaType: desc.mediaType, what: `manifest ${desc.digest}`, side: 'source' });
        // Children of an image index may be left out on purpose (platform filter; the inventory
        // records them), so only an image manifest's config and layers are required.
        if (!isIndex(m)) for (const d of [m.config, ...m.layers]) this.#want(d);
      }
    });
  }

  /**
   * Add the remaining blobs (never manifests) as the last entries of the archive, several at once.
   * Sizes are known, so every entry's offset is computed up front and each body is written at its
   * place with positional writes while others are still arriving; the bytes are the same as with
   * addBlob one at a time in this order (docs/archive-format.md, "Determinism"). Each body is
   * checked for size and digest by the stream `open` returns. After this only finish() or abort().
   */
  async addBlobs(blobs: readonly ConcurrentBlob[], opts: AddBlobsOptions = {}): Promise<void> {
    this.#assertState('open', 'addBlobs');
    for (const b of blobs) {
      if (!isDigest(b.desc.digest) || !Number.isSafeInteger(b.desc.size) || b.desc.size < 0 || isManifestMediaType(b.desc.mediaType)) {
        throw new AirlockError('INTERNAL', `addBlobs: descriptor ${String(b.desc.digest)} (${b.desc.mediaType}, ${b.desc.size} bytes) is not a valid blob`);
      }
    }
    this.#state = 'positional';
    await this.#queue.catch(() => {});
    if (this.#failure !== undefined) this.#assertState('open', 'addBlobs');
    const items: PositionalItem[] = [];
    for (const b of blobs) {
      if (this.#added.has(b.desc.digest)) continue;
      this.#added.add(b.desc.digest);
      items.push({ desc: b.desc, name: blobPath(b.desc.digest), open: b.open });
    }
    try {
      // Let tar-stream write what it holds and its end-of-archive blocks, then continue from where
      // those blocks start: they are overwritten by the first new entry and written again at the end.
      this.#pack.finalize();
      await this.#pump;
      const start = this.#written - TAR_TRAILER_BYTES;
      if (start < 0) throw new AirlockError('INTERNAL', `${this.#path}: the tar writer produced no end-of-archive blocks`);
      const r = await writeEntriesAt(this.#fh, this.#partial, start, items, {
        concurrency: opts.concurrency ?? 4,
        mtime: this.#mtime,
        ...(this.#signal ? { signal: this.#signal } : {}),
        ...(opts.onBlob ? { onBlob: opts.onBlob } : {}),
        ...(opts.describe ? { describe: (item: PositionalItem, e: unknown) => opts.describe!(item.desc, e) } : {}),
      });
      this.#written = r.size;
      this.#positionalSha256 = r.sha256;
    } catch (e) {
      const err = (this.#state as State) === 'failed' && this.#failure !== undefined ? this.#failure : e;
      await this.#fail(err);
      throw err instanceof AirlockError ? err : ioError(err, this.#partial, 'writing the archive');
    }
  }

  /**
   * End the tar, flush and fsync, rename FILE.partial to FILE, then write FILE.sha256
   * (`<hex>  <basename>\n`, the sha256sum format) atomically beside it.
   */
  async finish(): Promise<ArchiveResult> {
    const positional = this.#state === 'positional';
    this.#assertState(positional ? 'positional' : 'open', 'finish');
    await this.#queue.catch(() => {});
    this.#assertState(positional ? 'positional' : 'open', 'finish');
    if (this.#requireComplete) {
      const missing = [...this.#wanted.values()].filter((d) => !this.#added.has(d.digest) && !isNonDistributable(d));
      if (missing.length > 0) {
        const first = missing[0]!;
        const e = new AirlockError(
          'INTERNAL',
          `${this.#path}: ${missing.length} blob(s) reachable from index.json were never added, e.g. ${first.digest} (${first.mediaType}); the archive was not written`,
        );
        await this.#fail(e);
        throw e;
      }
    }
    this.#state = 'finishing';
    try {
      if (!positional) {
        this.#pack.finalize();
        await this.#pump;
      }
      await this.#fh.sync();
      await this.#fh.close();
    } catch (e) {
      const err = ioError(e, this.#partial, 'writing the archive');
      await this.#fail(err);
      throw err;
    }
    const sha256 = this.#positionalSha256 ?? this.#hash.digest('hex');
    const sidecar = `${this.#path}.sha256`;
    try {
      // A stale sidecar from an earlier run must never sit beside the new archive.
      await fsp.rm(sidecar, { force: true });
      await fsp.rename(this.#partial, this.#path);
    } catch (e) {
      const err = ioError(e, this.#path, 'renaming the finished archive into place');
      await this.#fail(err);
      throw err;
    }
    this.#state = 'finished';
    this.#signal?.removeEventListener('abort', this.#onAbort);
    await writeFileAtomic(sidecar, `${sha256}  ${path.basename(this.#path)}\n`);
    await syncDir(path.dirname(this.#path));
    return { path: this.#path, sha256, size: this.#written };
  }

  /** Give up: remove FILE.partial. Never leaves anything at FILE. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.#state === 'finished') return;
    await this.#fail(new AirlockError('ABORTED', `writing ${this.#path} was abandoned`, { side: 'local' }));
  }

  // ---- internals ----

  #assertState(want: State, op: string): void {
    if (this.#state === want) return;
    if (this.#state === 'failed') {
      const why = this.#failure instanceof Error ? `: ${this.#failure.message}` : '';
      throw new AirlockError(isAirlockError(this.#failure, 'ABORTED') ? 'ABORTED' : 'IO', `${this.#path}: the archive was aborted${why}`, {
        cause: this.#failure,
        side: 'local',
      });
    }
    throw new AirlockError('INTERNAL', `ArchiveWriter.${op}() called while the writer is ${this.#state}`);
  }

  #want(d: Descriptor): void {
    if (!this.#wanted.has(d.digest)) this.#wanted.set(d.digest, d);
  }

  /** Run `fn` after every earlier operation; any failure aborts the archive and is rethrown. */
  #run(fn: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(async () => {
      if (this.#state === 'failed') this.#assertState('open', 'write');
      try {
        await fn();
      } catch (e) {
        const err = this.#state === 'failed' && this.#failure !== undefined ? this.#failure : e;
        await this.#fail(err);
        throw err instanceof AirlockError ? err : ioError(err, this.#partial, 'writing the archive');
      }
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  async #entry(name: string, bytes: Buffer): Promise<void> {
    await this.#streamEntry(name, bytes.byteLength, [bytes]);
  }

  /**
   * Write one tar entry of known size from `body`. The entry is ended only when the body ended
   * cleanly (after the VerifyingStream's final check), so a bad blob never becomes a complete entry.
   */
  async #streamEntry(name: string, size: number, body: AsyncIterable<Buffer> | Buffer[], keep?: Buffer[]): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.#sinkDone = (err) => (err ? reject(err) : resolve());
    });
    done.catch(() => {});
    const sink = this.#pack.entry(
      { name, size, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: this.#mtime, type: 'file' },
      (err) => this.#sinkDone?.(err ?? undefined),
    );
    // The entry's failure reaches us through the callback above; an 'error' event without a
    // listener would otherwise be an uncaught exception.
    sink.on('error', () => {});
    for await (const chunk of body) {
      if (this.#state === 'failed') throw this.#failure;
      keep?.push(chunk);
      if (!sink.write(chunk)) await waitDrain(sink);
    }
    // streamx's end() takes optional data, not a callback: call it bare.
    (sink as unknown as { end(): void }).end();
    await done;
  }

  #sinkDone: ((err?: Error) => void) | undefined;

  /** Move what the tar packer produces to FILE.partial, hashing it on the way (no second read). */
  async #runPump(): Promise<void> {
    let position = 0;
    for await (const chunk of this.#pack as AsyncIterable<Buffer>) {
      this.#hash.update(chunk);
      let off = 0;
      while (off < chunk.length) {
        let bytesWritten: number;
        try {
          ({ bytesWritten } = await this.#fh.write(chunk, off, chunk.length - off, position));
        } catch (e) {
          // A full disk (ENOSPC) or any other write failure: fail the archive with an IO error
          // naming FILE.partial, which is then removed.
          const err = ioError(e, this.#partial, 'writing the archive');
          void this.#fail(err);
          throw err;
        }
        off += bytesWritten;
        position += bytesWritten;
      }
      this.#written = position;
    }
  }

  #cleanup: Promise<void> | undefined;

  /** Mark the archive failed and remove FILE.partial; every caller waits for the same cleanup. */
  async #fail(e: unknown): Promise<void> {
    if (this.#state === 'finished') return;
    this.#cleanup ??= this.#doFail(e);
    await this.#cleanup;
  }

  async #doFail(e: unknown): Promise<void> {
    // Everything before the first await runs synchronously, so the state is 'failed' (with this
    // error) before any other party sees the pack or the source die.
    this.#state = 'failed';
    this.#failure = e;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    const err = e instanceof Error ? e : new Error(String(e));
    this.#current?.destroy();
    this.#pack.destroy(err);
    this.#sinkDone?.(err);
    await this.#pump.catch(() => {});
    await this.#fh.close().catch(() => {});
    await fsp.rm(this.#partial, { force: true }).catch(() => {});
  }
}

function waitDrain(sink: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      sink.off('drain', onDrain);
      sink.off('error', onError);
      sink.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('tar entry closed before its body was written'));
    };
    sink.on('drain', onDrain);
    sink.on('error', onError);
    sink.on('close', onClose);
  });
}

/** Write `content` to `file` through a temp file in the same directory and a rename. */
export async function writeFileAtomic(file: string, content: string | Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw ioError(e, file, 'writing');
  }
}

/** fsync a directory so a rename in it survives a crash; not every platform allows it, so best effort. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // best effort
  }
}
