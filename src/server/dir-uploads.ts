import { createHash, type Hash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, digestAlgorithm } from '../oci/digest.js';
import type { AppendOptions, BlobStat } from './backend.js';
import { type DirLayout, UPLOAD_ID_RE } from './dir-layout.js';
import { DistributionError } from './errors.js';
import type { KeyedMutex } from './mutex.js';

/** Bounds on upload sessions (docs/serve.md "Limits"). */
export interface UploadLimits {
  /** the largest blob one session may grow to, in bytes */
  readonly maxBlobBytes: number;
  /** sessions open at once; a POST beyond answers 429 TOOMANYREQUESTS */
  readonly maxSessions: number;
  /** a session untouched (no chunk received) for this long is removed */
  readonly maxAgeMs: number;
}

interface UploadHash {
  hash: Hash;
  /** bytes fed to `hash`; compared with the file size before the hash is trusted */
  size: number;
}

/**
 * Upload sessions of the directory back end: `uploads/<uuid>` (the bytes so far) and
 * `uploads/<uuid>.repo` (the owning repository). Appends to one session are serialised
 * by the shared mutex under `upload:<id>`; the sweep takes the same key, so it never
 * removes a session while a chunk is being written to it.
 */
export class UploadStore {
  readonly #layout: DirLayout;
  readonly #mutex: KeyedMutex;
  readonly #limits: UploadLimits;
  readonly #hashes = new Map<string, UploadHash>();
  /** ids of the sessions on disk (this process is the only writer: root-lock.ts) */
  readonly #open = new Set<string>();

  constructor(layout: DirLayout, mutex: KeyedMutex, limits: UploadLimits) {
    this.#layout = layout;
    this.#mutex = mutex;
    this.#limits = limits;
  }

  get limits(): UploadLimits {
    return this.#limits;
  }

  get openSessions(): number {
    return this.#open.size;
  }

  async start(repo: string): Promise<string> {
    if (this.#open.size >= this.#limits.maxSessions) {
      throw new DistributionError(
        'TOOMANYREQUESTS',
        `${this.#open.size} upload sessions are open, the most this registry allows (--max-uploads); finish or cancel some, or retry later`,
      );
    }
    const id = randomUUID();
    this.#open.add(id);
    try {
      await this.#mutex.run(`upload:${id}`, async () => {
        // Session files are not fsynced: a session lost in a crash is started again by
        // its client; blobs, manifests and tags (the content) are written atomically.
        await fs.writeFile(`${this.#layout.upload(id)}.repo`, repo, { flag: 'wx' });
        await fs.writeFile(this.#layout.upload(id), Buffer.alloc(0), { flag: 'wx' });
      });
    } catch (e) {
      this.#open.delete(id);
      await this.#drop(id);
      throw e;
    }
    this.#hashes.set(id, { hash: createHash('sha256'), size: 0 });
    return id;
  }

  /** Bytes received so far; BLOB_UPLOAD_UNKNOWN for an unknown session or another repository's. */
  async check(repo: string, id: string): Promise<number> {
    const p = this.#layout.upload(id);
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

  async size(repo: string, id: string): Promise<number | undefined> {
    try {
      return await this.check(repo, id);
    } catch (e) {
      if (e instanceof DistributionError && e.specCode === 'BLOB_UPLOAD_UNKNOWN') return undefined;
      throw e;
    }
  }

  async append(repo: string, id: string, body: Readable, opts: AppendOptions = {}): Promise<number> {
    return this.#mutex.run(`upload:${id}`, () => this.#append(repo, id, body, opts));
  }

  async #append(repo: string, id: string, body: Readable, opts: AppendOptions): Promise<number> {
    const size = await this.check(repo, id);
    // distribution-spec "Pushing a blob in chunks": a chunk must start where the last ended
    if (opts.offset !== undefined && opts.offset !== size) {
      throw new DistributionError('BLOB_UPLOAD_INVALID', `chunk starts at ${opts.offset} but upload ${id} has ${size} bytes; resume at ${size}`, {
        status: 416,
        detail: { size },
      });
    }
    const room = this.#limits.maxBlobBytes - size;
    if (opts.length !== undefined && opts.length > room) throw tooLarge(size + opts.length, this.#limits.maxBlobBytes);
    let state = this.#hashes.get(id);
    if (state && state.size !== size) state = undefined;
    if (!state && size === 0) state = { hash: createHash('sha256'), size: 0 };
    if (state) this.#hashes.set(id, state);
    else this.#hashes.delete(id);
    const file = this.#layout.upload(id);
    const guard = new ChunkGuard(opts.length, room, size, this.#limits.maxBlobBytes);
    const out = createWriteStream(file, { flags: 'a' });
    try {
      // Streamed straight to the file: memory does not grow with the chunk size.
      if (state) await pipeline(body, guard, new HashTap(state), out);
      else await pipeline(body, guard, out);
      guard.checkComplete();
    } catch (e) {
      if (e instanceof DistributionError) {
        // A chunk that broke the protocol (longer or shorter than its Content-Range, or
        // over the size limit) is undone, so the session resumes where it was.
        this.#hashes.delete(id);
        await fs.truncate(file, size).catch(() => undefined);
      }
      throw e;
    }
    return (await fs.stat(file)).size;
  }

  /** Append the last (optional) chunk, check the digest, and rename the data into `blobs/`. */
  async complete(repo: string, id: string, digest: Digest, body: Readable | undefined, opts: AppendOptions, link: (d: Digest) => Promise<void>): Promise<BlobStat> {
    return this.#mutex.run(`upload:${id}`, async () => {
      const size = body ? await this.#append(repo, id, body, opts) : await this.check(repo, id);
      const p = this.#layout.upload(id);
      const actual = await this.#digest(id, p, size, digestAlgorithm(digest));
      if (actual !== digest) {
        await this.#drop(id);
        throw new DistributionError('DIGEST_INVALID', `uploaded content hashes to ${actual}, not ${digest}`, { detail: { digest } });
      }
      // rename is atomic: two clients finishing the same blob each rename identical bytes
      await fs.rename(p, this.#layout.blob(digest));
      await this.#drop(id);
      await link(digest);
      return { digest, size };
    });
  }

  async cancel(repo: string, id: string): Promise<boolean> {
    return this.#mutex.run(`upload:${id}`, async () => {
      if ((await this.size(repo, id)) === undefined) return false;
      await this.#drop(id);
      return true;
    });
  }

  async #digest(id: string, file: string, size: number, alg: 'sha256' | 'sha512'): Promise<Digest> {
    const state = this.#hashes.get(id);
    if (alg === 'sha256' && state && state.size === size) return `sha256:${state.hash.digest('hex')}` as Digest;
    // after a restart (or an undone chunk) the running hash is gone: hash the file, streamed
    const h = createHash(alg);
    await pipeline(createReadStream(file), new HashTap({ hash: h, size: 0 }), async (src: AsyncIterable<Buffer>) => {
      for await (const _ of src) void _;
    });
    return `${alg}:${h.digest('hex')}` as Digest;
  }

  async #drop(id: string): Promise<void> {
    this.#hashes.delete(id);
    this.#open.delete(id);
    const p = this.#layout.upload(id);
    await fs.rm(p, { force: true });
    await fs.rm(`${p}.repo`, { force: true });
  }

  /**
   * Remove sessions untouched for longer than `maxAgeMs` (by the newer mtime of their
   * two files: every chunk touches the data file), and the halves of sessions whose
   * other half is missing. A session busy with a chunk right now is skipped. Also
   * learns the sessions on disk (at open). Returns how many sessions were removed.
   */
  async sweep(now = Date.now()): Promise<number> {
    let names: string[];
    try {
      names = await fs.readdir(this.#layout.uploadsDir);
    } catch {
      return 0;
    }
    const ids = new Set<string>();
    for (const n of names) {
      const id = n.endsWith('.repo') ? n.slice(0, -5) : n;
      if (UPLOAD_ID_RE.test(id)) ids.add(id);
      else await fs.rm(path.join(this.#layout.uploadsDir, n), { force: true, recursive: true }).catch(() => undefined);
    }
    let removed = 0;
    for (const id of ids) {
      if (this.#mutex.busy(`upload:${id}`)) {
        this.#open.add(id);
        continue;
      }
      const gone = await this.#mutex.run(`upload:${id}`, async () => {
        const p = this.#layout.upload(id);
        const [data, repo] = await Promise.all([fs.stat(p).catch(() => undefined), fs.stat(`${p}.repo`).catch(() => undefined)]);
        const touched = Math.max(data?.mtimeMs ?? 0, repo?.mtimeMs ?? 0);
        if (data && repo && now - touched <= this.#limits.maxAgeMs) {
          this.#open.add(id);
          return false;
        }
        await this.#drop(id);
        return data !== undefined && repo !== undefined;
      });
      if (gone) removed++;
    }
    return removed;
  }
}

function tooLarge(total: number, max: number): DistributionError {
  return new DistributionError('SIZE_INVALID', `the upload would be ${total} bytes, over this registry's ${max}-byte limit (--max-blob-size)`, {
    status: 413,
    detail: { limit: max },
  });
}

/**
 * Counts a chunk on its way to the file: refuses bytes past the size limit, and, when
 * the chunk declared its length (Content-Range), bytes past it or a chunk that ends short.
 */
class ChunkGuard extends Transform {
  readonly #expected: number | undefined;
  readonly #room: number;
  readonly #start: number;
  readonly #max: number;
  #seen = 0;

  constructor(expected: number | undefined, room: number, start: number, max: number) {
    super();
    this.#expected = expected;
    this.#room = room;
    this.#start = start;
    this.#max = max;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#room) return cb(tooLarge(this.#start + this.#seen, this.#max));
    if (this.#expected !== undefined && this.#seen > this.#expected) return cb(this.#mismatch());
    cb(null, chunk);
  }

  #mismatch(): DistributionError {
    const what = this.#seen > this.#expected! ? `is longer than the ${this.#expected} bytes` : `has ${this.#seen} bytes, not the ${this.#expected}`;
    return new DistributionError('BLOB_UPLOAD_INVALID', `the chunk ${what} its Content-Range declares; none of it was kept, resume at ${this.#start}`, {
      detail: { size: this.#start },
    });
  }

  /** After the body ended normally: a declared length must have been met exactly. */
  checkComplete(): void {
    if (this.#expected !== undefined && this.#seen !== this.#expected) throw this.#mismatch();
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
