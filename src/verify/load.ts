import type { CheckedArchive } from '../archive/check.js';
import { fetchBytes } from '../content/read.js';
import { AirlockError } from '../errors.js';
import { isIndex } from '../oci/manifest.js';
import { effectivePolicies, type Policy } from './policy.js';
import { loadTrust, type TrustRootData } from './trust.js';
import { verifyImages, type VerifyReport } from './verify.js';

/** Signature payloads, bundles and envelopes are small; anything larger is not one. */
const MAX_SIGNATURE_LAYER = 4 * 1024 * 1024;

export interface ArchiveVerifyOptions {
  /** policies from a `--policy` file: replace those the archive carries (Red Hat's default stays) */
  policies?: readonly Policy[];
}

/** The trust roots an archive carries, with their bytes (read through the archive reader, digest-checked). */
export async function archiveTrustRoots(a: CheckedArchive): Promise<TrustRootData[]> {
  const out: TrustRootData[] = [];
  for (const t of a.inventory.trustRoots) {
    const bytes = await fetchBytes(a.reader, { mediaType: t.mediaType, digest: t.digest, size: t.size }, { what: `trust root ${t.name}`, side: 'archive' });
    out.push({ name: t.name, kind: t.kind, digest: t.digest, bytes });
  }
  return out;
}

/**
 * Gather, from a checked archive, what the verifier needs (trust roots, signature and
 * attestation layers) and run it. The reads go through the archive reader, which
 * checks size and digest; the verification itself does no I/O.
 */
export async function verifyArchive(a: CheckedArchive, o: ArchiveVerifyOptions = {}): Promise<{ report: VerifyReport; policies: Policy[]; roots: TrustRootData[] }> {
  const roots = await archiveTrustRoots(a);
  const trust = loadTrust(roots);
  const blobs = new Map<string, Uint8Array>();
  for (const r of a.inventory.referrers) {
    if (r.kind !== 'signature' && r.kind !== 'attestation') continue;
    const m = a.manifests.get(r.digest);
    if (!m || isIndex(m.manifest)) continue;
    for (const l of m.manifest.layers) {
      if (blobs.has(l.digest) || l.size > MAX_SIGNATURE_LAYER) continue;
      if (!(await a.reader.exists(l))) throw new AirlockError('ARCHIVE', `signature layer ${l.digest} of ${r.digest} is not in the archive`, { side: 'archive' });
      blobs.set(l.digest, await fetchBytes(a.reader, l, { what: `signature layer ${l.digest}`, side: 'archive' }));
    }
  }
  const imageSet = a.inventory.imageSet as { policies?: unknown } | null;
  const policies = effectivePolicies({ rootNames: trust.names, fromArchive: imageSet?.policies, ...(o.policies ? { fromFile: o.policies } : {}) });
  const report = verifyImages({
    images: a.inventory.images,
    referrers: a.inventory.referrers,
    manifests: a.manifests,
    blobs,
    trust,
    policies,
  });
  return { report, policies, roots };
}
