import { digestOf, sha256, type Digest } from '../oci/digest.js';
import { Annotation, encodeJson, type Descriptor, type ImageIndex, type ImageManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import type { Graph } from '../graph/discover.js';
import { AirlockAnnotation } from './annotations.js';
import { INVENTORY_SCHEMA, type Inventory, type InventoryTrustRoot } from './inventory.js';

/** A trust root as pack carries it: bytes plus where they came from. */
export interface TrustRootContent {
  name: string;
  kind: string;
  purpose: string;
  source: string;
  fetchedAt: string;
  mediaType: string;
  bytes: Buffer;
}

/** Small blobs airlock creates itself (inventory, its manifest, trust roots, the empty config). */
export interface CreatedBlob {
  desc: Descriptor;
  bytes: Buffer;
}

export interface ArchivePlan {
  indexBytes: Buffer;
  inventory: Inventory;
  inventoryDesc: Descriptor;
  /** in write order: everything airlock made, then the source manifests */
  created: CreatedBlob[];
}

export const EMPTY_CONFIG: CreatedBlob = {
  desc: { mediaType: MediaType.OciEmpty, digest: sha256('{}'), size: 2 },
  bytes: Buffer.from('{}'),
};

function blob(mediaType: string, bytes: Buffer, annotations?: Record<string, string>): CreatedBlob {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length, ...(annotations ? { annotations } : {}) }, bytes };
}

/** The name an image is listed under in index.json: its full source reference, with the tag when it had one. */
export function refName(image: Graph['images'][number]): string {
  return image.requested.toString();
}

/**
 * Compute index.json and the inventory from the discovered graph. Everything here
 * is airlock's own JSON, so it is serialised by us, deterministically: entries are
 * sorted and `created` comes from SOURCE_DATE_EPOCH when set.
 */
export function planArchive(graph: Graph, opts: { version: string; created: Date; imageSet: unknown; trustRoots: readonly TrustRootContent[] }): ArchivePlan {
  const trust = [...opts.trustRoots].sort((a, b) => a.name.localeCompare(b.name));
  const trustBlobs = trust.map((t) => blob(t.mediaType, t.bytes, { 'org.opencontainers.image.title': t.name }));
  const trustEntries: InventoryTrustRoot[] = trust.map((t, i) => ({
    name: t.name,
    kind: t.kind,
    purpose: t.purpose,
    source: t.source,
    fetchedAt: t.fetchedAt,
    digest: trustBlobs[i]!.desc.digest,
    size: trustBlobs[i]!.desc.size,
    mediaType: t.mediaType,
  }));
  const referrers = graph.edges.map((e) => {
    const m = graph.manifests.get(e.referrer.digest);
    const artifactType = m && 'artifactType' in m.manifest ? m.manifest.artifactType : e.referrer.artifactType;
    return {
      subject: e.subject,
      digest: e.referrer.digest,
      mediaType: e.referrer.mediaType,
      size: e.referrer.size,
      kind: e.kind,
      ...(artifactType !== undefined ? { artifactType } : {}),
      types: e.types,
      foundBy: e.foundBy,
      repository: e.repository,
      ...(e.tag !== undefined ? { tag: e.tag } : {}),
    };
  });
  const byKind = { signature: 0, attestation: 0, sbom: 0, other: 0 };
  for (const r of referrers) byKind[r.kind]++;
  let bytes = 0;
  for (const m of graph.manifests.values()) bytes += m.desc.size;
  for (const b of graph.blobs.values()) bytes += b.desc.size;
  const inventory: Inventory = {
    schema: INVENTORY_SCHEMA,
    airlock: { version: opts.version },
    created: opts.created.toISOString(),
    imageSet: opts.imageSet,
    images: graph.images.map((im) => ({
      source: im.requested.toString(),
      repository: im.requested.name,
      ...(im.requested.tag !== undefined ? { tag: im.requested.tag } : {}),
      digest: im.desc.digest,
      mediaType: im.desc.mediaType,
      size: im.desc.size,
      platforms: im.platforms.map((p) => ({ digest: p.desc.digest, ...(p.platform ? { platform: p.platform } : {}) })),
      skippedPlatforms: im.skipped.map((p) => ({ digest: p.desc.digest, ...(p.platform ? { platform: p.platform } : {}) })),
    })),
    referrers,
    trustRoots: trustEntries,
    totals: { images: graph.images.length, manifests: graph.manifests.size, blobs: graph.blobs.size, bytes, referrers: byKind },
  };
  const inventoryBlob = blob(MediaType.AirlockInventory, encodeJson(inventory));
  const inventoryManifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType: MediaType.AirlockInventory,
    config: EMPTY_CONFIG.desc,
    layers: [inventoryBlob.desc, ...trustBlobs.map((t) => t.desc)],
    annotations: { [Annotation.Created]: inventory.created },
  };
  const inventoryManifestBlob = blob(MediaType.OciManifest, encodeJson(inventoryManifest));
  const inventoryDesc: Descriptor = {
    ...inventoryManifestBlob.desc,
    artifactType: MediaType.AirlockInventory,
    annotations: { [AirlockAnnotation.Kind]: 'inventory', [Annotation.RefName]: 'airlock-inventory' },
  };

  const entries: Descriptor[] = [inventoryDesc];
  for (const im of graph.images) {
    entries.push({
      mediaType: im.desc.mediaType,
      digest: im.desc.digest,
      size: im.desc.size,
      annotations: {
        [Annotation.RefName]: refName(im),
        [AirlockAnnotation.Kind]: 'image',
        [AirlockAnnotation.Source]: im.pinned.toString(),
        [AirlockAnnotation.Repository]: im.requested.name,
      },
    });
  }
  for (const e of graph.edges) {
    const ann: Record<string, string> = {
      [AirlockAnnotation.Kind]: e.tag !== undefined ? 'cosign-tag' : 'referrer',
      [AirlockAnnotation.Subject]: e.subject,
      [AirlockAnnotation.Repository]: e.repository,
    };
    if (e.tag !== undefined) {
      ann[AirlockAnnotation.Tag] = e.tag;
      ann[Annotation.RefName] = `${e.repository}:${e.tag}`;
    }
    const m = graph.manifests.get(e.referrer.digest);
    const artifactType = m && 'artifactType' in m.manifest ? m.manifest.artifactType : undefined;
    entries.push({
      mediaType: e.referrer.mediaType,
      digest: e.referrer.digest,
      size: e.referrer.size,
      ...(artifactType !== undefined ? { artifactType } : {}),
      annotations: ann,
    });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: entries };
  const created: CreatedBlob[] = [inventoryManifestBlob, inventoryBlob, EMPTY_CONFIG, ...trustBlobs];
  return { indexBytes: encodeJson(index), inventory, inventoryDesc, created: dedupe(created) };
}

function dedupe(list: CreatedBlob[]): CreatedBlob[] {
  const seen = new Set<Digest>();
  return list.filter((b) => (seen.has(b.desc.digest) ? false : (seen.add(b.desc.digest), true)));
}
