import type { ArchivePlan, TrustRootContent } from '../archive/build.js';
import type { Graph } from '../graph/discover.js';
import type { Descriptor } from '../oci/manifest.js';
import { effectivePolicies } from './policy.js';
import { loadTrust } from './trust.js';
import { verifyImages, type VerifyReport } from './verify.js';

const MAX_SIGNATURE_LAYER = 4 * 1024 * 1024;

/**
 * `pack --verify`: the same checks as on the disconnected side, on what pack is about
 * to write (the plan's inventory, the discovered manifests, the trust roots it will
 * carry). Signature layers are read through `readSmall` (digest-checked by the caller).
 */
export async function verifyPlan(
  plan: ArchivePlan,
  graph: Graph,
  trustRoots: readonly TrustRootContent[],
  imageSetPolicies: unknown,
  readSmall: (desc: Descriptor, repository: string) => Promise<Buffer>,
): Promise<VerifyReport> {
  const blobs = new Map<string, Uint8Array>();
  for (const e of graph.edges) {
    if (e.kind !== 'signature' && e.kind !== 'attestation') continue;
    const m = graph.manifests.get(e.referrer.digest);
    if (!m || !('layers' in m.manifest)) continue;
    for (const l of m.manifest.layers) {
      if (blobs.has(l.digest) || l.size > MAX_SIGNATURE_LAYER) continue;
      blobs.set(l.digest, await readSmall(l, m.repository));
    }
  }
  const roots = trustRoots.map((t) => ({ name: t.name, kind: t.kind, digest: plan.inventory.trustRoots.find((x) => x.name === t.name)!.digest, bytes: t.bytes }));
  const trust = loadTrust(roots);
  return verifyImages({
    images: plan.inventory.images,
    referrers: plan.inventory.referrers,
    manifests: graph.manifests,
    blobs,
    trust,
    policies: effectivePolicies({ rootNames: trust.names, fromArchive: imageSetPolicies }),
  });
}
