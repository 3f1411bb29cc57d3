import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import { type Digest, isDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { referrerDescriptor } from '../oci/referrers.js';
import { MediaType } from '../oci/media-types.js';
import type { AppendOptions, BlobRead, BlobStat, ByteRange, PutManifestResult, StoredManifest, WritableBackend } from './backend.js';
import { TAG_RE } from './backend.js';
import { compare, DirLayout, exists } from './dir-layout.js';
import { UploadStore } from './dir-uploads.js';
import { DistributionError } from './errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import { KeyedMutex } from './mutex.js';
import { acquireRootLock, type RootLock } from './root-lock.js';
import { checkManifest, parseReference, requiredDescriptors } from './validate.js';

interface ManifestLink {
  mediaType: string;
  size: number;
}

export interface DirectoryBackendOptions {
  /**
   * Open without writing: no lock on the root, no sweep of upload sessions. The HTTP
   * layer refuses writes itself (`--read-only`); this lets such a server share the root
   * with the writable one.
   */
  readOnly?: boolean;
  maxBlobBytes?: number;
  maxUploads?: number;
  uploadMaxAgeMs?: number;
  uploadSweepIntervalMs?: number;
  /** accept an index whose child manifests are absent (default true; validate.ts) */
  sparseIndex?: boolean;
  /** told how many stale upload sessions each sweep removed, when it removed any */
  onSweep?: (removed: number) => void;
}

/**
 * Read-write storage for `airlock serve --root DIR` (layout: dir-layout.ts, docs/serve.md).
 * Every file appears by rename, so a reader sees either the old or the new content.
 */
export class DirectoryBackend implements WritableBackend {
  readonly root: string;
  readonly #layout: DirLayout;
  readonly #mutex = new KeyedMutex();
  readonly #uploads: UploadStore;
  readonly #sparseIndex: boolean;
  #lock: RootLock | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> = Promise.resolve();

  private constructor(layout: DirLayout, opts: DirectoryBackendOptions) {
    this.#layout = layout;
    this.root = layout.root;
    this.#sparseIndex = opts.sparseIndex ?? true;
    this.#uploads = new UploadStore(layout, this.#mutex, {
      maxBlobBytes: opts.maxBlobBytes ?? DEFAULT_LIMITS.maxBlobBytes,
      maxSessions: opts.maxUploads ?? DEFAULT_LIMITS.maxUploads,
      maxAgeMs: opts.uploadMaxAgeMs ?? DEFAULT_LIMITS.uploadMaxAgeMs,
    });
  }

  /** Open (creating if needed) a storage directory; a writable one is locked (root-lock.ts). */
  static async open(root: string, opts: DirectoryBackendOptions = {}): Promise<DirectoryBackend> {
    const b = new DirectoryBackend(new DirLayout(root), opts);
    const l = b.#layout;
    try {
      for (const d of ['blobs/sha256', 'blobs/sha512', 'repositories', 'uploads', 'tmp']) {
        await fs.mkdir(path.join(l.root, d), { recursive: true });
      }
    } catch (e) {
      throw new AirlockError('IO', `cannot prepare the registry storage at ${l.root}: ${(e as Error).message}; check the path and its permissions`, { cause: e, side: 'local' });
    }
    if (!opts.readOnly) b.#lock = await acquireRootLock(l.root, 'serve');
    try {
      if (!(await exists(path.join(l.root, 'oci-layout')))) {
        await l.writeAtomic(path.join(l.root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      }
      await sweepTmp(l);
      if (!(await exists(path.join(l.root, 'index.json')))) {
        await l.writeAtomic(path.join(l.root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }));
      }
      if (!opts.readOnly) {
        // stale sessions go at start, then on a timer
        const removed = await b.#uploads.sweep();
        if (removed > 0) opts.onSweep?.(removed);
        const every = opts.uploadSweepIntervalMs ?? DEFAULT_LIMITS.uploadSweepIntervalMs;
        b.#timer = setInterval(() => {
          b.#sweeping = b.#uploads.sweep().then((n) => (n > 0 ? opts.onSweep?.(n) : undefined), () => undefined);
        }, every);
        b.#timer.unref();
      }
    } catch (e) {
      await b.close();
      if (e instanceof AirlockError) throw e;
      throw new AirlockError('IO', `cannot prepare the registry storage at ${l.root}: ${(e as Error).message}; check the path and its permissions`, { cause: e, side: 'local' });
    }
    return b;
  }

  /** Stop the sweep timer and release the root. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
    await this.#lock?.release();
    this.#lock = undefined;
  }

  /** Upload sessions open now (for tests and the request log). */
  get openUploads(): number {
    return this.#uploads.openSessions;
  }

  // ---- reads

  repositories(): Promise<string[]> {
    return this.#layout.repositories();
  }

  async tags(repo: string): Promise<string[] | undefined> {
    if (!(await exists(this.#layout.repo(repo)))) return undefined;
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.#layout.repo(repo), '_tags'));
    } catch {
      names = [];
    }
    return names.filter((t) => TAG_RE.test(t)).sort(compare);
  }

  async statBlob(repo: string, digest: Digest): Promise<BlobStat | undefined> {
    const l = this.#layout;
    if (!(await exists(l.link(repo, '_blobs', digest))) && !(await exists(l.link(repo, '_manifests', digest)))) return undefined;
    try {
      const st = await fs.stat(l.blob(digest));
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
    const stream = createReadStream(this.#layout.blob(digest), range ? { start: range.start, end: range.end } : {});
    return { ...st, stream };
  }

  async #manifestLink(repo: string, digest: Digest): Promise<ManifestLink | undefined> {
    try {
      const v = JSON.parse(await fs.readFile(this.#layout.link(repo, '_manifests', digest), 'utf8')) as ManifestLink;
      return typeof v.mediaType === 'string' && typeof v.size === 'number' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  async #resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    try {
      const d = (await fs.readFile(this.#layout.tag(repo, tag), 'utf8')).trim();
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
      bytes = await fs.readFile(this.#layout.blob(digest));
    } catch {
      return undefined;
    }
    return { digest, mediaType: link.mediaType, bytes };
  }

  async referrers(repo: string, subject: Digest): Promise<Descriptor[]> {
    const dir = this.#layout.referrersDir(repo, subject);
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

  // ---- uploads (dir-uploads.ts)

  startUpload(repo: string): Promise<string> {
    return this.#uploads.start(repo);
  }

  uploadSize(repo: string, id: string): Promise<number | undefined> {
    return this.#uploads.size(repo, id);
  }

  appendUpload(repo: string, id: string, body: Readable, opts?: AppendOptions): Promise<number> {
    return this.#uploads.append(repo, id, body, opts);
  }

  completeUpload(repo: string, id: string, digest: Digest, body?: Readable, opts: AppendOptions = {}): Promise<BlobStat> {
    return this.#uploads.complete(repo, id, digest, body, opts, (d) => this.#linkBlob(repo, d));
  }

  cancelUpload(repo: string, id: string): Promise<boolean> {
    return this.#uploads.cancel(repo, id);
  }

  /** Stale sessions, now (the timer does the same). */
  sweepUploads(now?: number): Promise<number> {
    return this.#uploads.sweep(now);
  }

  async #linkBlob(repo: string, digest: Digest): Promise<void> {
    await this.#layout.writeAtomic(this.#layout.link(repo, '_blobs', digest), digest);
  }

  async mountBlob(repo: string, from: string | undefined, digest: Digest, mayRead: (repo: string) => boolean = () => true): Promise<boolean> {
    let source = from;
    if (source === undefined) {
      // automatic content discovery, among the repositories the caller may read only:
      // a digest alone must not reveal or copy what another repository holds
      for (const r of await this.repositories()) {
        if (r !== repo && mayRead(r) && (await this.statBlob(r, digest))) {
          source = r;
          break;
        }
      }
    }
    if (source === undefined || !mayRead(source) || !(await this.statBlob(source, digest))) return false;
    await this.#linkBlob(repo, digest);
    return true;
  }

  async deleteBlob(repo: string, digest: Digest): Promise<boolean> {
    // The shared blob stays (another repository may link it); only this link goes.
    // `airlock serve gc` removes bytes that nothing references any more.
    try {
      await fs.rm(this.#layout.link(repo, '_blobs', digest));
      return true;
    } catch {
      return false;
    }
  }

  // ---- manifests

  async putManifest(repo: string, reference: string, bytes: Buffer, contentType: string | undefined): Promise<PutManifestResult> {
    const l = this.#layout;
    const { manifest, mediaType, digest } = checkManifest(bytes, contentType, reference);
    const ref = parseReference(reference);
    const need = requiredDescriptors(manifest, { sparseIndex: this.#sparseIndex });
    const missing: string[] = [];
    for (const d of need.blobs) {
      const st = await this.statBlob(repo, d.digest);
      if (!st) missing.push(d.digest);
      else if (st.size !== d.size) {
        throw new DistributionError('MANIFEST_INVALID', `manifest says ${d.digest} has ${d.size} bytes, but the blob in ${repo} has ${st.size}`, { detail: { digest: d.digest } });
      }
    }
    for (const d of need.manifests) if (!(await this.#manifestLink(repo, d.digest))) missing.push(d.digest);
    if (missing.length > 0) {
      throw new DistributionError('MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length} unknown blob(s) or manifest(s) in ${repo}, first ${missing[0]}; push them first`, {
        detail: { digest: missing[0] },
      });
    }
    if (!(await exists(l.blob(digest)))) await l.writeAtomic(l.blob(digest), bytes);
    const subject = manifest.subject?.digest;
    await this.#mutex.run(`repo:${repo}`, async () => {
      await l.writeAtomic(l.link(repo, '_manifests', digest), JSON.stringify({ mediaType, size: bytes.byteLength } satisfies ManifestLink));
      if ('tag' in ref) await l.writeAtomic(l.tag(repo, ref.tag), digest);
      if (subject !== undefined) {
        // one file per referrer: concurrent pushes of referrers never overwrite each other
        const desc = referrerDescriptor(manifest, digest, bytes.byteLength, mediaType);
        await l.writeAtomic(l.referrer(repo, subject, digest), JSON.stringify(desc));
      }
    });
    return subject === undefined ? { digest } : { digest, subject };
  }

  async deleteManifest(repo: string, reference: string): Promise<boolean> {
    const l = this.#layout;
    const ref = parseReference(reference);
    return this.#mutex.run(`repo:${repo}`, async () => {
      if ('tag' in ref) {
        try {
          await fs.rm(l.tag(repo, ref.tag));
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
      if (subject !== undefined) await fs.rm(l.referrer(repo, subject, ref.digest), { force: true });
      for (const tag of (await this.tags(repo)) ?? []) {
        if ((await this.#resolveTag(repo, tag)) === ref.digest) await fs.rm(l.tag(repo, tag), { force: true });
      }
      await fs.rm(l.link(repo, '_manifests', ref.digest), { force: true });
      return true;
    });
  }
}

/**
 * Remove temp files left by a crash. Only old ones: a read-only server on the same root
 * may be writing nothing, but a writer that just started may be writing a fresh one.
 */
export async function sweepTmp(l: DirLayout, olderThanMs = 60 * 60 * 1000): Promise<number> {
  const cutoff = Date.now() - olderThanMs;
  let removed = 0;
  for (const n of await fs.readdir(l.tmpDir).catch(() => [] as string[])) {
    try {
      const st = await fs.stat(path.join(l.tmpDir, n));
      if (st.mtimeMs < cutoff) {
        await fs.rm(path.join(l.tmpDir, n), { force: true });
        removed++;
      }
    } catch {
      // vanished meanwhile: renamed into place by its writer
    }
  }
  return removed;
}
