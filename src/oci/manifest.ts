import { AirlockError, type Side } from '../errors.js';
import { isDigest, type Digest } from './digest.js';
import { isIndexMediaType, MAX_MANIFEST_BYTES, MediaType } from './media-types.js';

/** OCI image-spec descriptor.md */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: Platform;
  readonly urls?: readonly string[];
}

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
  readonly 'os.version'?: string;
  readonly 'os.features'?: readonly string[];
}

/** OCI image-spec manifest.md (and Docker v2 schema 2, which has the same shape). */
export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** OCI image-spec image-index.md (and Docker manifest list). */
export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

export type Manifest = ImageManifest | ImageIndex;

export function isIndex(m: Manifest): m is ImageIndex {
  return Array.isArray((m as ImageIndex).manifests);
}

/** Key annotations. OCI image-spec annotations.md */
export const Annotation = {
  RefName: 'org.opencontainers.image.ref.name',
  Created: 'org.opencontainers.image.created',
  CosignSignature: 'dev.cosignproject.cosign/signature',
  CosignBundle: 'dev.sigstore.cosign/bundle',
  CosignCertificate: 'dev.sigstore.cosign/certificate',
  CosignChain: 'dev.sigstore.cosign/chain',
  BundlePredicateType: 'dev.sigstore.bundle.predicateType',
  BundleContent: 'dev.sigstore.bundle.content',
  PredicateType: 'predicateType',
} as const;

interface ParseOptions {
  /** media type the bytes were served or listed with, used when the body has none */
  mediaType?: string;
  what?: string;
  side?: Side;
}

function invalid(what: string, why: string, side: Side | undefined): AirlockError {
  return new AirlockError('MANIFEST_INVALID', `${what}: ${why}`, side === undefined ? {} : { side });
}

/**
 * Narrow untrusted JSON to a descriptor. Unknown fields are kept by the caller's
 * bytes, never by us: we only read.
 */
export function parseDescriptor(v: unknown, what: string, side?: Side): Descriptor {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(what, 'descriptor is not an object', side);
  const o = v as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || o.mediaType === '') throw invalid(what, 'descriptor has no mediaType', side);
  if (typeof o.digest !== 'string' || !isDigest(o.digest)) {
    throw invalid(what, `descriptor digest ${JSON.stringify(o.digest)} is not a valid digest`, side);
  }
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw invalid(what, `descriptor ${o.digest} has an invalid size`, side);
  }
  if (o.annotations !== undefined && !isStringMap(o.annotations)) {
    throw invalid(what, `descriptor ${o.digest} has non-string annotations`, side);
  }
  if (o.artifactType !== undefined && typeof o.artifactType !== 'string') {
    throw invalid(what, `descriptor ${o.digest} has a non-string artifactType`, side);
  }
  return v as Descriptor;
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** Parse manifest bytes (kept by the caller as they are) into a read-only view. */
export function parseManifest(bytes: Uint8Array, options: ParseOptions = {}): Manifest {
  const what = options.what ?? 'manifest';
  const side = options.side;
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw invalid(what, `is ${bytes.byteLength} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit for manifests`, side);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw invalid(what, `is not valid JSON (${(e as Error).message})`, side);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(what, 'is not a JSON object', side);
  const o = v as Record<string, unknown>;
  if (o.schemaVersion !== 2) throw invalid(what, `has schemaVersion ${JSON.stringify(o.schemaVersion)}, expected 2`, side);
  const mediaType = typeof o.mediaType === 'string' ? o.mediaType : options.mediaType;
  if (o.subject !== undefined) parseDescriptor(o.subject, `${what} subject`, side);
  if (o.annotations !== undefined && !isStringMap(o.annotations)) throw invalid(what, 'has non-string annotations', side);
  if (Array.isArray(o.manifests) || isIndexMediaType(mediaType)) {
    if (!Array.isArray(o.manifests)) throw invalid(what, 'is an index without a manifests array', side);
    o.manifests.forEach((d, i) => parseDescriptor(d, `${what} manifests[${i}]`, side));
    return v as ImageIndex;
  }
  parseDescriptor(o.config, `${what} config`, side);
  if (!Array.isArray(o.layers)) throw invalid(what, 'has no layers array', side);
  o.layers.forEach((d, i) => parseDescriptor(d, `${what} layers[${i}]`, side));
  return v as ImageManifest;
}

/** The media type of manifest bytes: their own `mediaType` field, else the fallback given. */
export function manifestMediaType(m: Manifest, fallback?: string): string {
  if (typeof m.mediaType === 'string') return m.mediaType;
  if (fallback) return fallback;
  return isIndex(m) ? MediaType.OciIndex : MediaType.OciManifest;
}

/** The descriptors a manifest points down to (children, config, layers), not its subject. */
export function successors(m: Manifest): Descriptor[] {
  return isIndex(m) ? [...m.manifests] : [m.config, ...m.layers];
}

/**
 * The artifact type of a manifest for referrer listings.
 * OCI image-spec manifest.md#guidelines-for-artifact-usage and distribution-spec
 * "listing referrers": artifactType, else config.mediaType.
 */
export function artifactTypeOf(m: Manifest): string | undefined {
  if (m.artifactType) return m.artifactType;
  if (!isIndex(m)) return m.config.mediaType;
  return undefined;
}

/** Canonical, stable JSON of a value we create ourselves (never for fetched manifests). */
export function encodeJson(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}
