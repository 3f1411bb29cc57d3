import type { Digest } from '../../oci/digest.js';
import { Reference } from '../../oci/reference.js';
import type { FbcBundle } from './fbc.js';

/**
 * The images a filtered catalog needs: each selected bundle's image and its
 * `relatedImages` (operator, operands; the bundle image is usually listed there too,
 * with an empty name), deduplicated by the reference as written.
 *
 * By digest or not: Red Hat's catalogs name every image by digest, and the cluster
 * pulls exactly those references (the CSV names them), so a digest reference is carried
 * as is and mirrored for an ImageDigestMirrorSet. A reference by tag only is kept as a
 * tag (`digest` undefined): pack resolves the tag through the registry (as oc-mirror
 * does), records the digest it got in the inventory, and unpack must push the tag too
 * and write an ImageTagMirrorSet entry, because the pod will ask for the tag.
 *
 * oc-mirror skips empty image strings (OCPBUGS-31622) and references it cannot parse
 * (OCPBUGS-33081) with a warning; so does this, in `skipped`, for pack to print.
 */
export interface OperatorImage {
  /** the reference as the catalog writes it (what blockedImages patterns are matched on) */
  readonly written: string;
  readonly reference: Reference;
  /** set when the catalog pins the image by digest */
  readonly digest?: Digest;
  /** bundle: the bundle image of a selected bundle; related: an image a bundle lists */
  readonly roles: readonly ('bundle' | 'related')[];
  /** `package/bundle` of every selected bundle that needs it, sorted */
  readonly usedBy: readonly string[];
}

export interface SkippedImage {
  readonly written: string;
  readonly bundle: string;
  readonly reason: string;
}

export interface CollectedImages {
  /** sorted by the written reference */
  readonly images: readonly OperatorImage[];
  readonly skipped: readonly SkippedImage[];
}

export function collectOperatorImages(bundles: readonly FbcBundle[]): CollectedImages {
  const byRef = new Map<string, { reference: Reference; roles: Set<'bundle' | 'related'>; usedBy: Set<string> }>();
  const skipped: SkippedImage[] = [];
  const add = (written: string, role: 'bundle' | 'related', b: FbcBundle): void => {
    const id = `${b.package}/${b.name}`;
    if (written.trim() === '') return; // OCPBUGS-31622: bundles list empty related images
    let entry = byRef.get(written);
    if (entry === undefined) {
      let reference: Reference;
      try {
        reference = Reference.parse(written);
      } catch (e) {
        skipped.push({ written, bundle: id, reason: (e as Error).message });
        return;
      }
      if (reference.tag === undefined && reference.digest === undefined) {
        skipped.push({ written, bundle: id, reason: `image reference "${written}" has neither a tag nor a digest` });
        return;
      }
      entry = { reference, roles: new Set(), usedBy: new Set() };
      byRef.set(written, entry);
    }
    entry.roles.add(role);
    entry.usedBy.add(id);
  };
  for (const b of bundles) {
    add(b.image, 'bundle', b);
    for (const r of b.relatedImages) add(r.image, r.image === b.image ? 'bundle' : 'related', b);
  }
  const images = [...byRef]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([written, e]) => ({
      written,
      reference: e.reference,
      ...(e.reference.digest !== undefined ? { digest: e.reference.digest } : {}),
      roles: (['bundle', 'related'] as const).filter((r) => e.roles.has(r)),
      usedBy: [...e.usedBy].sort(),
    }));
  return { images, skipped };
}
