import { isAirlockError } from '../errors.js';
import { type Digest, digestOf, isDigest } from '../oci/digest.js';
import { type Descriptor, isIndex, type Manifest, parseManifest } from '../oci/manifest.js';
import { isIndexMediaType, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { DistributionError } from './errors.js';
import { TAG_RE } from './backend.js';
import { findKeyProblem } from './strict-json.js';

export interface CheckedManifest {
  readonly manifest: Manifest;
  readonly mediaType: string;
  readonly digest: Digest;
}

/** `Content-Type` without parameters, lower-cased. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const t = contentType.split(';')[0]?.trim().toLowerCase();
  return t === '' ? undefined : t;
}

/**
 * Parse a reference from a manifest URL: a digest (anything with ':') or a tag.
 * distribution-spec "Pulling manifests": `<reference>` is a tag or a digest.
 */
export function parseReference(reference: string): { digest: Digest } | { tag: string } {
  if (reference.includes(':')) {
    if (!isDigest(reference)) throw new DistributionError('DIGEST_INVALID', `"${reference.slice(0, 140)}" is not a sha256 or sha512 digest`);
    return { digest: reference };
  }
  if (!TAG_RE.test(reference)) throw new DistributionError('MANIFEST_INVALID', `"${reference.slice(0, 140)}" is not a valid tag`, { detail: { tag: reference.slice(0, 140) } });
  return { tag: reference };
}

/**
 * A reference to read (GET, HEAD) or delete: one that cannot be a tag or digest names
 * nothing, so it is unknown (404 MANIFEST_UNKNOWN, as distribution-spec's pull section and
 * its conformance suite ask), not a bad request; only a PUT of one is refused with 400.
 */
export function parseReadReference(name: string, reference: string): { digest: Digest } | { tag: string } {
  try {
    return parseReference(reference);
  } catch (e) {
    if (e instanceof DistributionError) throw manifestUnknown(name, reference);
    throw e;
  }
}

export function manifestUnknown(name: string, reference: string): DistributionError {
  const shown = reference.slice(0, 140);
  return new DistributionError('MANIFEST_UNKNOWN', `manifest ${shown} is not in ${name}`, { detail: { name, reference: shown } });
}

/**
 * Check pushed manifest bytes: size cap, JSON, schemaVersion, a media type we store,
 * agreement between `Content-Type` and the body's `mediaType` (image-spec manifest.md
 * "mediaType ... when used, MUST" match), and the digest in the URL if one was given.
 */
export function checkManifest(bytes: Buffer, contentType: string | undefined, reference: string): CheckedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new DistributionError('MANIFEST_INVALID', `manifest is ${bytes.byteLength} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`, { status: 413 });
  }
  const ref = parseReference(reference);
  const declared = bareMediaType(contentType);
  let manifest: Manifest;
  try {
    manifest = parseManifest(bytes, declared === undefined ? { what: 'manifest' } : { what: 'manifest', mediaType: declared });
  } catch (e) {
    if (isAirlockError(e)) throw new DistributionError('MANIFEST_INVALID', e.message, { cause: e });
    throw e;
  }
  // Two parsers must not read two manifests from these bytes (strict-json.ts).
  const problem = findKeyProblem(bytes.toString('utf8'));
  if (problem) {
    const where = problem.path === '' ? 'the manifest' : `the object at ${problem.path}`;
    const why =
      problem.kind === 'duplicate'
        ? `repeats the key "${problem.key.slice(0, 64)}"`
        : problem.kind === 'case-fold'
          ? `has the key "${problem.key.slice(0, 64)}", which Go clients read as the same field as another key`
          : 'nests deeper than a manifest can';
    throw new DistributionError('MANIFEST_INVALID', `${where} ${why}; push a manifest whose every key appears once`, { detail: { path: problem.path, key: problem.key.slice(0, 64) } });
  }
  const fields = manifest as unknown as Record<string, unknown>;
  if (isIndex(manifest) ? 'config' in fields || 'layers' in fields : 'manifests' in fields) {
    throw new DistributionError('MANIFEST_INVALID', `manifest has the fields of both an image manifest and an index; push one or the other`);
  }
  const own = typeof manifest.mediaType === 'string' ? manifest.mediaType : undefined;
  if (own !== undefined && declared !== undefined && own !== declared) {
    throw new DistributionError('MANIFEST_INVALID', `manifest mediaType ${own} does not match Content-Type ${declared}`);
  }
  const mediaType = own ?? declared ?? (isIndex(manifest) ? MANIFEST_MEDIA_TYPES[1]! : MANIFEST_MEDIA_TYPES[0]!);
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw new DistributionError('MANIFEST_INVALID', `manifest media type ${mediaType} is not supported; push an OCI or Docker v2 manifest or index`);
  }
  if (isIndex(manifest) !== isIndexMediaType(mediaType)) {
    throw new DistributionError('MANIFEST_INVALID', `manifest body does not have the shape of ${mediaType}`);
  }
  const digest = 'digest' in ref ? digestOf(bytes, ref.digest.startsWith('sha512:') ? 'sha512' : 'sha256') : digestOf(bytes);
  if ('digest' in ref && digest !== ref.digest) {
    throw new DistributionError('DIGEST_INVALID', `manifest hashes to ${digest}, not ${ref.digest}`, { detail: { digest: ref.digest } });
  }
  return { manifest, mediaType, digest };
}

/** Layer media types that clients fetch from their `urls` (image-spec layer.md, Docker foreign layers). */
const NON_DISTRIBUTABLE = new Set([
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

export interface RequiredDescriptors {
  /** must be blobs of the repository, of the size the descriptor says */
  readonly blobs: readonly Descriptor[];
  /** must be manifests of the repository */
  readonly manifests: readonly Descriptor[];
}

/**
 * Every descriptor the registry would serve must be there before the manifest is
 * (distribution-spec "Pushing Manifests": MANIFEST_BLOB_UNKNOWN otherwise): the config and
 * every layer. As in Distribution, only a non-distributable (foreign) layer with `urls` may
 * be absent, since clients fetch it from those URLs; `urls` on any other layer are refused,
 * not taken as a reason to skip the check. A `subject` need not exist (the spec requires
 * accepting referrers before their subject).
 *
 * An index's children are required unless `sparseIndex`: distribution-spec lets a
 * registry accept or refuse an index whose children are absent ("MAY reject"), and an
 * archive packed with a platform filter carries the index bytes whole (its digest and
 * signatures intact) but only the chosen platforms.
 */
export function requiredDescriptors(m: Manifest, opts: { sparseIndex: boolean }): RequiredDescriptors {
  if (isIndex(m)) return { blobs: [], manifests: opts.sparseIndex ? [] : m.manifests };
  const blobs: Descriptor[] = [m.config];
  m.layers.forEach((l, i) => {
    const urls = l.urls ?? [];
    if (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string')) {
      throw new DistributionError('MANIFEST_INVALID', `layers[${i}] has urls that are not a list of strings`);
    }
    if (urls.length === 0) {
      blobs.push(l);
      return;
    }
    if (!NON_DISTRIBUTABLE.has(l.mediaType)) {
      throw new DistributionError('MANIFEST_INVALID', `layers[${i}] (${l.mediaType.slice(0, 100)}) has urls, which only non-distributable layers may have; push the layer instead`, {
        detail: { digest: l.digest },
      });
    }
    for (const u of urls) {
      let url: URL | undefined;
      try {
        url = new URL(u);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.hash !== '') {
        throw new DistributionError('MANIFEST_INVALID', `layers[${i}] has a url that is not an http(s) URL without a fragment`, { detail: { digest: l.digest } });
      }
    }
  });
  return { blobs, manifests: [] };
}
