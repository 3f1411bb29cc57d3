/**
 * Media types airlock reads and writes.
 * OCI image-spec: media-types.md; Docker: manifest v2 schema 2.
 */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  // Sigstore / cosign
  CosignSimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  CosignArtifactSig: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  SigstoreBundle01: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
  SigstoreBundle02: 'application/vnd.dev.sigstore.bundle+json;version=0.2',
  SigstoreBundle03: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  DsseEnvelope: 'application/vnd.dsse.envelope.v1+json',
  InToto: 'application/vnd.in-toto+json',
  Spdx: 'application/spdx+json',
  SpdxText: 'text/spdx',
  CycloneDx: 'application/vnd.cyclonedx+json',
  // airlock
  AirlockInventory: 'application/vnd.airlock.inventory.v1+json',
  AirlockTrustRoot: 'application/vnd.airlock.trust-root.v1',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

/** The Accept list for manifest requests. Distribution needs the exact type even by digest. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt !== undefined && MANIFEST_MEDIA_TYPES.includes(mt);
}

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

/** Manifests are held in memory; anything larger is refused (distribution-spec suggests 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
