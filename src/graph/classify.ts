import { isIndex, type ImageManifest, type Manifest, Annotation } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import type { CosignSuffix } from '../oci/referrers.js';

export type ReferrerKind = 'signature' | 'attestation' | 'sbom' | 'other';

export interface Classification {
  kind: ReferrerKind;
  /**
   * The types an attachment is selected by: its artifactType, else config media type,
   * else its layer media types (the first match wins). Empty for signatures.
   */
  types: string[];
}

/** cosign's signing predicate: a Sigstore bundle with it is a signature, not an attestation. */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

const SBOM_PREFIXES = ['application/spdx', 'text/spdx', 'application/vnd.cyclonedx', 'application/vnd.syft'];
const ATTESTATION_PREFIXES = [MediaType.InToto, MediaType.DsseEnvelope, 'application/vnd.in-toto'];

function startsWithAny(t: string, prefixes: readonly string[]): boolean {
  const lower = t.toLowerCase();
  return prefixes.some((p) => lower.startsWith(p));
}

function isSimpleSigning(m: ImageManifest): boolean {
  return m.layers.length > 0 && m.layers.every((l) => l.mediaType === MediaType.CosignSimpleSigning);
}

function isSigstoreBundleType(t: string | undefined): boolean {
  return t !== undefined && t.startsWith('application/vnd.dev.sigstore.bundle');
}

/**
 * Decide what a referrer (or a cosign-tag manifest) is. Signatures: cosign
 * simple-signing manifests, cosign's OCI 1.1 signature artifact, and Sigstore
 * bundles whose predicate type is cosign's signing predicate. Everything else is
 * an attachment selected by type.
 */
export function classify(m: Manifest, viaCosignTag?: CosignSuffix): Classification {
  // What a cosign .sig tag holds is a signature by convention; verification decides whether it is a good one.
  if (viaCosignTag === 'sig') return { kind: 'signature', types: [] };
  if (isIndex(m)) {
    const t = m.artifactType;
    return { kind: kindOfType(t ?? ''), types: t ? [t] : [] };
  }
  if (isSimpleSigning(m) || m.artifactType === MediaType.CosignArtifactSig) {
    return { kind: 'signature', types: [] };
  }
  const bundleType = isSigstoreBundleType(m.artifactType)
    ? m.artifactType
    : m.layers.find((l) => isSigstoreBundleType(l.mediaType))?.mediaType;
  if (bundleType !== undefined) {
    const predicate = m.annotations?.[Annotation.BundlePredicateType] ?? m.layers[0]?.annotations?.[Annotation.BundlePredicateType];
    const content = m.annotations?.[Annotation.BundleContent];
    if (predicate === COSIGN_SIGN_PREDICATE || (predicate === undefined && content === 'message-signature')) {
      return { kind: 'signature', types: [] };
    }
    // A DSSE bundle carries an in-toto statement: select it as an attestation too.
    return { kind: 'attestation', types: [bundleType, MediaType.InToto] };
  }
  if (viaCosignTag === 'att') {
    return { kind: 'attestation', types: [MediaType.InToto, ...m.layers.map((l) => l.mediaType)] };
  }
  if (viaCosignTag === 'sbom') {
    const types = m.layers.map((l) => l.mediaType);
    return { kind: 'sbom', types };
  }
  const types: string[] = [];
  if (m.artifactType) types.push(m.artifactType);
  else if (m.config.mediaType !== MediaType.OciEmpty && m.config.mediaType !== MediaType.OciConfig) {
    types.push(m.config.mediaType);
  } else {
    types.push(...m.layers.map((l) => l.mediaType));
  }
  const kind = types.map(kindOfType).find((k) => k !== 'other') ?? 'other';
  return { kind, types };
}

export function kindOfType(t: string): ReferrerKind {
  if (startsWithAny(t, SBOM_PREFIXES)) return 'sbom';
  if (startsWithAny(t, ATTESTATION_PREFIXES)) return 'attestation';
  return 'other';
}
