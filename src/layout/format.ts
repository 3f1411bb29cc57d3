/**
 * Names, annotations and small helpers shared by the archive writer and reader.
 * The contract they implement is written down in docs/archive-format.md.
 */
import { AirlockError } from '../errors.js';
import { digestAlgorithm, digestHex, isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';

/** OCI image-spec image-layout.md#oci-layout-file: the only version defined so far. */
export const LAYOUT_VERSION = '1.0.0';
export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
/** The exact bytes airlock writes for `oci-layout` (stable, so archives are reproducible). */
export const OCI_LAYOUT_BYTES: Buffer = Buffer.from(`{"imageLayoutVersion":"${LAYOUT_VERSION}"}`, 'utf8');

/** index.json bytes airlock writes for a list of descriptors, in the order given. */
export function encodeJsonIndex(manifests: readonly Descriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }), 'utf8');
}

/** `blobs/<alg>/<hex>`: image-spec image-layout.md#blobs */
export function blobPath(digest: Digest): string {
  return `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

/** The digest a `blobs/<alg>/<hex>` name stands for, or undefined when the name is not a valid blob path. */
export function digestFromBlobPath(name: string): Digest | undefined {
  const parts = name.split('/');
  if (parts.length !== 3 || parts[0] !== 'blobs') return undefined;
  const d = `${parts[1]}:${parts[2]}`;
  return isDigest(d) ? d : undefined;
}

/**
 * Layers that image-spec (layer.md#non-distributable-layers, deprecated) and Docker ("foreign" layers)
 * allow to be absent from a copy: a layout may legitimately lack them.
 */
export function isNonDistributable(desc: Descriptor): boolean {
  return /nondistributable|foreign/.test(desc.mediaType);
}

/**
 * The modification time stamped on every entry: `mtime` when given, else SOURCE_DATE_EPOCH
 * (https://reproducible-builds.org/specs/source-date-epoch/), else now.
 */
export function archiveMtime(mtime?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (mtime !== undefined) {
    if (!Number.isSafeInteger(mtime) || mtime < 0) {
      throw new AirlockError('USAGE', `archive mtime ${mtime} is not a non-negative whole number of seconds`);
    }
    return mtime;
  }
  const sde = env.SOURCE_DATE_EPOCH;
  if (sde !== undefined && sde !== '') {
    // The spec says a malformed value must be an error, not silently ignored.
    if (!/^[0-9]{1,12}$/.test(sde)) {
      throw new AirlockError('USAGE', `SOURCE_DATE_EPOCH="${sde.slice(0, 40)}" is not a whole number of seconds; fix or unset it`);
    }
    return Number(sde);
  }
  return Math.floor(Date.now() / 1000);
}

/** Map a file-system error to one clear IO line naming the path. */
export function ioError(e: unknown, path: string, doing: string): AirlockError {
  if (e instanceof AirlockError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  let hint = '';
  switch (code) {
    case 'ENOSPC':
      return new AirlockError('IO', `${path}: no space left on device (ENOSPC) while ${doing}; free space or write the archive elsewhere`, {
        cause: e,
        side: 'local',
      });
    case 'EFBIG':
      // past RLIMIT_FSIZE (Node ignores SIGXFSZ, so the write fails instead) or the file system's largest file
      hint = '; the file is larger than a file-size limit (ulimit -f) or the file system allows, raise the limit or write elsewhere';
      break;
    case 'EDQUOT':
      hint = '; disk quota exceeded, free space or write elsewhere';
      break;
    case 'EACCES':
    case 'EPERM':
      hint = '; permission denied, check the directory permissions';
      break;
    case 'ENOENT':
      hint = '; the directory does not exist';
      break;
    case 'EROFS':
      hint = '; the file system is read-only';
      break;
  }
  const why = code ?? (e instanceof Error ? e.message : String(e));
  return new AirlockError('IO', `${path}: ${doing} failed (${why})${hint}`, { cause: e, side: 'local' });
}
