import { isAirlockError } from '../errors.js';
import { type Digest, digestOf, isDigest } from '../oci/digest.js';
import { type Descriptor, isIndex, type Manifest, parseManifest } from '../oci/manifest.js';
import { isIndexMediaType, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { DistributionError } from './errors.js';
import { TAG_RE } from './backend.js';

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

/**
 * Descriptors that must already be in the repository before the manifest is accepted
 * (distribution-spec "Pushing Manifests": MANIFEST_BLOB_UNKNOWN otherwise). Layers
 * with `urls` (non-distributable) may legitimately live elsewhere.
 */
export function requiredChildren(m: Manifest): { manifests: Descriptor[]; blobs: Descriptor[] } {
  // An index is accepted with absent children (a sparse index): distribution-spec lets a
  // registry accept or refuse it ("MAY reject"), and an archive packed with a platform
  // filter carries the index bytes whole (its digest and signatures intact) but only the
  // chosen platforms. Pulling an absent platform then fails at the child, as it should.
  if (isIndex(m)) return { manifests: [], blobs: [] };
  return { manifests: [], blobs: [m.config, ...m.layers.filter((l) => !(l.urls && l.urls.length > 0))] };
}
