import { digestAlgorithm, digestHex, type Digest } from './digest.js';
import type { Descriptor, ImageIndex, Manifest } from './manifest.js';
import { artifactTypeOf } from './manifest.js';
import { manifestMediaType } from './manifest.js';
import { MediaType } from './media-types.js';

/**
 * The referrers tag schema: `<alg>-<ref>` with the algorithm truncated to 32 and the
 * encoded part to 64 characters. distribution-spec spec.md "Referrers Tag Schema".
 */
export function fallbackTag(digest: Digest): string {
  return `${digestAlgorithm(digest).slice(0, 32)}-${digestHex(digest).slice(0, 64)}`;
}

export type CosignSuffix = 'sig' | 'att' | 'sbom';

/** cosign's tag convention: `sha256-<hex>.sig` / `.att` / `.sbom` in the subject's repository. */
export function cosignTag(digest: Digest, suffix: CosignSuffix): string {
  return `${digestAlgorithm(digest)}-${digestHex(digest)}.${suffix}`;
}

/** The descriptor a referrers listing holds for a referrer manifest (distribution-spec "Listing Referrers"). */
export function referrerDescriptor(manifest: Manifest, digest: Digest, size: number, fallbackMediaType?: string): Descriptor {
  const artifactType = artifactTypeOf(manifest);
  return {
    mediaType: manifestMediaType(manifest, fallbackMediaType),
    digest,
    size,
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(manifest.annotations !== undefined ? { annotations: manifest.annotations } : {}),
  };
}

/** An empty referrers index, as the API answers for an unknown digest. */
export function referrersIndex(manifests: readonly Descriptor[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
}

/** Client-side filter: distribution-spec allows a server to ignore `artifactType`, so always re-apply. */
export function filterByArtifactType(list: readonly Descriptor[], artifactType: string | undefined): Descriptor[] {
  if (artifactType === undefined) return [...list];
  return list.filter((d) => d.artifactType === artifactType);
}
