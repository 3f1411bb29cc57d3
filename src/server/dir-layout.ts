import { randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Digest, digestAlgorithm, digestHex } from '../oci/digest.js';
import { DistributionError } from './errors.js';

/**
 * Where everything lives under a `serve --root` directory (docs/serve.md "Storage layout"):
 *   oci-layout, index.json           an OCI image layout (image-spec image-layout.md)
 *   blobs/<alg>/<hex>                every blob and manifest, shared by all repositories
 *   repositories/<name>/_blobs/<alg>/<hex>       link: blob is in the repository
 *   repositories/<name>/_manifests/<alg>/<hex>   link: {"mediaType","size"} of a manifest
 *   repositories/<name>/_tags/<tag>              the digest the tag points at
 *   repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>   a referrer's descriptor
 *   uploads/<uuid>, uploads/<uuid>.repo          upload sessions
 *   tmp/                                         temp files, renamed into place
 *   serve.lock                                   the writer holding the root (root-lock.ts)
 * Repository path components cannot start with "_" (the <name> grammar), so the
 * metadata directories never collide with a nested repository.
 */
export class DirLayout {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get blobsDir(): string {
    return path.join(this.root, 'blobs');
  }

  get repositoriesDir(): string {
    return path.join(this.root, 'repositories');
  }

  get uploadsDir(): string {
    return path.join(this.root, 'uploads');
  }

  get tmpDir(): string {
    return path.join(this.root, 'tmp');
  }

  blob(d: Digest): string {
    return path.join(this.root, 'blobs', digestAlgorithm(d), digestHex(d));
  }

  repo(repo: string): string {
    return path.join(this.repositoriesDir, ...repo.split('/'));
  }

  link(repo: string, kind: '_blobs' | '_manifests', d: Digest): string {
    return path.join(this.repo(repo), kind, digestAlgorithm(d), digestHex(d));
  }

  tag(repo: string, tag: string): string {
    return path.join(this.repo(repo), '_tags', tag);
  }

  referrersDir(repo: string, subject: Digest): string {
    return path.join(this.repo(repo), '_referrers', digestAlgorithm(subject), digestHex(subject));
  }

  referrer(repo: string, subject: Digest, referrer: Digest): string {
    return path.join(this.referrersDir(repo, subject), `${digestAlgorithm(referrer)}-${digestHex(referrer)}`);
  }

  /** An upload's data file; the id is a server-made UUID, so anything else is unknown. */
  upload(id: string): string {
    if (!UPLOAD_ID_RE.test(id)) throw new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown`);
    return path.join(this.uploadsDir, id);
  }

  /** temp file + fsync + rename: readers never see a half-written file. */
  async writeAtomic(target: string, data: string | Buffer): Promise<void> {
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(this.tmpDir, randomUUID());
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

  /** Every repository that holds a manifest or blob link, sorted. */
  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      if (prefix !== '' && entries.some((e) => e.name === '_manifests' || e.name === '_blobs')) out.push(prefix);
      for (const e of entries) {
        if (e.isDirectory() && !e.name.startsWith('_')) await walk(path.join(dir, e.name), prefix === '' ? e.name : `${prefix}/${e.name}`);
      }
    };
    await walk(this.repositoriesDir, '');
    return out.sort(compare);
  }
}

export const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Lexical order by code unit, as distribution-spec asks of tag and catalog listings. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
