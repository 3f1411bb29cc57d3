import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { AirlockError } from '../errors.js';
import { type Digest, isDigest } from '../oci/digest.js';
import { isIndex, parseManifest } from '../oci/manifest.js';
import { MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { sweepTmp } from './dir-backend.js';
import { DirLayout, exists } from './dir-layout.js';
import { UploadStore } from './dir-uploads.js';
import { DEFAULT_LIMITS } from './limits.js';
import { KeyedMutex } from './mutex.js';
import { acquireRootLock } from './root-lock.js';

export interface GcOptions {
  /** blobs written less than this long ago are kept even when unreferenced (default 1 hour) */
  graceMs?: number;
  /** upload sessions idle for longer than this are removed (default: serve's --upload-max-age default) */
  uploadMaxAgeMs?: number;
  /** report what would go, remove nothing */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** told each blob as it is removed (or would be, in a dry run) */
  onRemove?: (digest: Digest, size: number) => void;
}

export interface GcReport {
  /** manifests found through links, tags and referrer entries, and index children */
  readonly manifests: number;
  /** blobs kept: referenced, or younger than the grace period */
  readonly kept: number;
  readonly removed: number;
  readonly bytesRemoved: number;
  /** repository links to removed (or missing) blobs that were dropped */
  readonly linksRemoved: number;
  readonly uploadsRemoved: number;
}

export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

/**
 * Garbage collection of a `serve --root` directory (`airlock serve gc`, docs/serve.md).
 *
 * Mark: every manifest a repository links (tagged or not, so referrers and index
 * children count), every tag target and referrer entry, and, read from the manifests'
 * bytes, their configs, layers and child manifests, recursively. A blob that only a
 * repository's `_blobs` link names (uploaded, but no manifest uses it; or left behind by
 * a deleted manifest) is not referenced. Sweep: unreferenced blobs older than the grace
 * period, the links to them, idle upload sessions and old temp files.
 *
 * Safe against a concurrent push because there is none: gc takes the root's writer lock
 * (root-lock.ts), so it refuses to run while a writable server holds the root, and a
 * server refuses to start while gc runs. The grace period keeps the blobs of a push that
 * was interrupted (layers up, manifest not yet) by a restart just before gc.
 */
export async function collectGarbage(root: string, opts: GcOptions = {}): Promise<GcReport> {
  const l = new DirLayout(root);
  if (!(await exists(path.join(l.root, 'oci-layout'))) || !(await exists(l.blobsDir)) || !(await exists(l.repositoriesDir))) {
    throw new AirlockError('USAGE', `${l.root} is not an airlock serve storage directory (no oci-layout, blobs/ and repositories/); check --root`);
  }
  const lock = await acquireRootLock(l.root, 'gc');
  try {
    return await collect(l, opts);
  } finally {
    await lock.release();
  }
}

async function collect(l: DirLayout, opts: GcOptions): Promise<GcReport> {
  const aborted = (): void => {
    if (opts.signal?.aborted) throw new AirlockError('ABORTED', 'garbage collection interrupted; nothing half-done: run it again');
  };
  const marked = new Set<Digest>();
  const queue: Digest[] = [];
  const manifest = (d: Digest): void => {
    if (marked.has(d)) return;
    marked.add(d);
    queue.push(d);
  };
  const repos = await l.repositories();
  for (const repo of repos) {
    aborted();
    for (const d of await digestsIn(path.join(l.repo(repo), '_manifests'))) manifest(d);
    for (const t of await fs.readdir(path.join(l.repo(repo), '_tags')).catch(() => [] as string[])) {
      const d = (await fs.readFile(path.join(l.repo(repo), '_tags', t), 'utf8').catch(() => '')).trim();
      if (isDigest(d)) manifest(d);
    }
    for (const alg of await fs.readdir(path.join(l.repo(repo), '_referrers')).catch(() => [] as string[])) {
      for (const subject of await fs.readdir(path.join(l.repo(repo), '_referrers', alg)).catch(() => [] as string[])) {
        for (const entry of await fs.readdir(path.join(l.repo(repo), '_referrers', alg, subject)).catch(() => [] as string[])) {
          const d = entry.replace('-', ':');
          if (isDigest(d)) manifest(d);
        }
      }
    }
  }
  let manifests = 0;
  for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
    aborted();
    let bytes: Buffer;
    try {
      const st = await fs.stat(l.blob(d));
      if (st.size > MAX_MANIFEST_BYTES) continue;
      bytes = await fs.readFile(l.blob(d));
    } catch {
      continue; // a link to bytes that are gone: nothing below it to keep
    }
    let m;
    try {
      m = parseManifest(bytes);
    } catch {
      continue; // stored bytes were checked on push; a foreign file is kept, not followed
    }
    manifests++;
    if (isIndex(m)) for (const c of m.manifests) manifest(c.digest);
    else for (const b of [m.config, ...m.layers]) marked.add(b.digest);
  }
  // sweep
  const cutoff = Date.now() - (opts.graceMs ?? DEFAULT_GC_GRACE_MS);
  let kept = 0;
  let removed = 0;
  let bytesRemoved = 0;
  const gone = new Set<Digest>();
  for (const alg of ['sha256', 'sha512']) {
    for (const hex of await fs.readdir(path.join(l.blobsDir, alg)).catch(() => [] as string[])) {
      aborted();
      const d = `${alg}:${hex}`;
      if (!isDigest(d)) continue; // not ours: leave it
      if (marked.has(d)) {
        kept++;
        continue;
      }
      const st = await fs.stat(l.blob(d)).catch(() => undefined);
      if (!st) continue;
      if (st.mtimeMs > cutoff) {
        kept++;
        continue;
      }
      if (!opts.dryRun) await fs.rm(l.blob(d), { force: true });
      gone.add(d);
      removed++;
      bytesRemoved += st.size;
      opts.onRemove?.(d, st.size);
    }
  }
  let linksRemoved = 0;
  for (const repo of repos) {
    aborted();
    const dir = path.join(l.repo(repo), '_blobs');
    for (const d of await digestsIn(dir)) {
      if (gone.has(d) || (!opts.dryRun && !(await exists(l.blob(d))))) {
        if (!opts.dryRun) await fs.rm(l.link(repo, '_blobs', d), { force: true });
        linksRemoved++;
      }
    }
  }
  let uploadsRemoved = 0;
  if (!opts.dryRun) {
    const uploads = new UploadStore(l, new KeyedMutex(), {
      maxBlobBytes: DEFAULT_LIMITS.maxBlobBytes,
      maxSessions: DEFAULT_LIMITS.maxUploads,
      maxAgeMs: opts.uploadMaxAgeMs ?? DEFAULT_LIMITS.uploadMaxAgeMs,
    });
    uploadsRemoved = await uploads.sweep();
    await sweepTmp(l);
  }
  return { manifests, kept, removed, bytesRemoved, linksRemoved, uploadsRemoved };
}

/** The digests named by `<dir>/<alg>/<hex>` files. */
async function digestsIn(dir: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const alg of await fs.readdir(dir).catch(() => [] as string[])) {
    for (const hex of await fs.readdir(path.join(dir, alg)).catch(() => [] as string[])) {
      const d = `${alg}:${hex}`;
      if (isDigest(d)) out.push(d);
    }
  }
  return out;
}
