import { AirlockError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor, Platform } from '../oci/manifest.js';
import type { FoundBy } from '../graph/discover.js';
import type { ReferrerKind } from '../graph/classify.js';

/**
 * The inventory: what the archive holds and why, as one JSON document stored as
 * the single layer of an OCI artifact manifest (artifactType INVENTORY_TYPE) that
 * index.json lists. Trust roots are further layers of that manifest, so the
 * inventory manifest's digest covers everything that decides verification.
 * docs/archive-format.md is the contract for this shape.
 */
export const INVENTORY_SCHEMA = 1;

export interface InventoryImage {
  /** the reference as the user asked for it (`quay.io/org/app:1.2`) */
  source: string;
  /** `registry/repository` */
  repository: string;
  tag?: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** children packed, for an index */
  platforms: { digest: Digest; platform?: Platform }[];
  /** children the platform filter left out: the index still names them */
  skippedPlatforms: { digest: Digest; platform?: Platform }[];
}

export interface InventoryReferrer {
  subject: Digest;
  digest: Digest;
  mediaType: string;
  size: number;
  kind: ReferrerKind;
  artifactType?: string;
  /** the types it was selected by (empty for signatures) */
  types: string[];
  foundBy: FoundBy[];
  repository: string;
  /** for cosign tag attachments: the tag (`sha256-<hex>.sig`) */
  tag?: string;
}

export interface InventoryTrustRoot {
  name: string;
  /** public-key | rekor-key | sigstore-trusted-root */
  kind: string;
  purpose: string;
  source: string;
  fetchedAt: string;
  digest: Digest;
  size: number;
  mediaType: string;
}

export interface Inventory {
  schema: typeof INVENTORY_SCHEMA;
  airlock: { version: string };
  created: string;
  imageSet: unknown;
  images: InventoryImage[];
  referrers: InventoryReferrer[];
  trustRoots: InventoryTrustRoot[];
  totals: {
    images: number;
    manifests: number;
    blobs: number;
    bytes: number;
    referrers: Record<ReferrerKind, number>;
  };
}

/** Narrow an inventory read from an (untrusted) archive. */
export function parseInventory(bytes: Uint8Array, where = 'archive inventory'): Inventory {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new AirlockError('ARCHIVE', `${where}: not valid JSON (${(e as Error).message})`, { side: 'archive' });
  }
  const bad = (why: string): never => {
    throw new AirlockError('ARCHIVE', `${where}: ${why}`, { side: 'archive' });
  };
  if (typeof v !== 'object' || v === null) bad('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.schema !== INVENTORY_SCHEMA) bad(`schema ${JSON.stringify(o.schema)} is not supported (this airlock reads ${INVENTORY_SCHEMA})`);
  for (const k of ['images', 'referrers', 'trustRoots'] as const) if (!Array.isArray(o[k])) bad(`"${k}" is not a list`);
  (o.images as unknown[]).forEach((x, i) => {
    const im = x as Record<string, unknown>;
    if (typeof im?.source !== 'string' || typeof im.digest !== 'string' || !isDigest(im.digest)) bad(`images[${i}] lacks a source or a valid digest`);
    if (!Array.isArray(im.platforms)) bad(`images[${i}].platforms is not a list`);
  });
  (o.referrers as unknown[]).forEach((x, i) => {
    const r = x as Record<string, unknown>;
    if (typeof r?.subject !== 'string' || !isDigest(r.subject) || typeof r.digest !== 'string' || !isDigest(r.digest)) {
      bad(`referrers[${i}] lacks a valid subject or digest`);
    }
  });
  (o.trustRoots as unknown[]).forEach((x, i) => {
    const t = x as Record<string, unknown>;
    if (typeof t?.name !== 'string' || typeof t.digest !== 'string' || !isDigest(t.digest)) bad(`trustRoots[${i}] lacks a name or a valid digest`);
  });
  return v as Inventory;
}

export function descriptorOf(x: { digest: Digest; size: number; mediaType: string }): Descriptor {
  return { mediaType: x.mediaType, digest: x.digest, size: x.size };
}
