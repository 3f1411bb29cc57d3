import { stringify } from 'yaml';
import type { TrustRootData } from '../verify/trust.js';
import { policyFor, REKOR_PAIRS, type Policy } from '../verify/policy.js';
import type { ClusterFile } from './mirror-sets.js';

/** Where the generated policy.json expects the key files on a RHEL or podman host. */
export const HOST_KEY_DIR = '/etc/containers/airlock/keys';

export interface ClusterPolicyInput {
  /** a name prefix for the resources (`airlock-<inventory digest>`) */
  name: string;
  policies: readonly Policy[];
  roots: readonly TrustRootData[];
  /** source repository → mirror repository, as unpack pushed them */
  repositories: readonly { source: string; destination: string }[];
  images?: readonly { repository: string }[];
}

export interface ClusterPolicyOutput {
  files: ClusterFile[];
  /** what could not be expressed (shown to the user, and in the docs) */
  notes: string[];
}

/** A DNS-1123 name; never `openshift`, the cluster's own policy that must not be edited. */
function resourceName(prefix: string, policy: string): string {
  const n = `${prefix}-${policy}`.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 253);
  return n === 'openshift' ? `airlock-${n}` : n;
}

function pemB64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/**
 * Signature policies for the cluster and for hosts, from the policies verify applied:
 *
 * - a ClusterImagePolicy (config.openshift.io/v1) per policy that requires a signature and
 *   covers mirrored repositories. Its scopes are the *source* repositories: pods name the
 *   source, the ImageDigestMirrorSet redirects the pull, and CRI-O evaluates the policy
 *   against the name the pod used; the signatures name the source too. PublicKey root with
 *   keyData (base64 PEM), rekorKeyData when the policy requires the log, and
 *   MatchRepoDigestOrExact identity.
 * - registries.d YAML that turns on use-sigstore-attachments for the mirror hosts and the
 *   source repositories, so .sig tags are looked up beside the images.
 * - a containers policy.json (containers-policy.json(5)) with sigstoreSigned requirements for
 *   the same repositories (and remapIdentity for the mirror names), plus the key files.
 */
export function clusterPolicies(i: ClusterPolicyInput): ClusterPolicyOutput {
  const files: ClusterFile[] = [];
  const notes: string[] = [];
  const byName = new Map(i.roots.map((r) => [r.name, r]));
  const keyFiles = new Map<string, Uint8Array>();
  const docker: Record<string, unknown[]> = {};
  for (const p of i.policies) {
    if (p.require !== 'signature') continue;
    const covered = i.repositories.filter((r) => policyFor(i.policies, r.source) === p);
    if (covered.length === 0) continue;
    const keyRoots = p.roots.map((n) => byName.get(n)).filter((r): r is TrustRootData => r?.kind === 'public-key');
    const key = keyRoots[0];
    if (!key) {
      notes.push(`policy ${p.name}: its roots (${p.roots.join(', ')}) hold no public key; a Sigstore trusted root needs FulcioCAWithRekor, which airlock does not generate`);
      continue;
    }
    if (keyRoots.length > 1) notes.push(`policy ${p.name}: a ClusterImagePolicy holds one key; using ${key.name}, not ${keyRoots.slice(1).map((r) => r.name).join(', ')}`);
    let rekor: TrustRootData | undefined;
    if (p.transparencyLog) {
      const paired = REKOR_PAIRS[key.name];
      rekor = (paired ? byName.get(paired) : undefined) ?? i.roots.find((r) => r.kind === 'rekor-key');
      if (!rekor) notes.push(`policy ${p.name}: requires a transparency log, but no Rekor key travelled; the cluster policy checks the key only`);
    }
    const scopes = [...new Set(covered.map((r) => r.source))].sort();
    files.push({
      name: `clusterimagepolicy-${p.name}.yaml`,
      content: stringify({
        apiVersion: 'config.openshift.io/v1',
        kind: 'ClusterImagePolicy',
        metadata: { name: resourceName(i.name, p.name) },
        spec: {
          scopes,
          policy: {
            rootOfTrust: {
              policyType: 'PublicKey',
              publicKey: { keyData: pemB64(key.bytes), ...(rekor ? { rekorKeyData: pemB64(rekor.bytes) } : {}) },
            },
            signedIdentity: { matchPolicy: 'MatchRepoDigestOrExact' },
          },
        },
      }),
    });
    keyFiles.set(key.name, key.bytes);
    if (rekor) keyFiles.set(rekor.name, rekor.bytes);
    const requirement = (signedIdentity: unknown) => ({
      type: 'sigstoreSigned',
      keyPath: `${HOST_KEY_DIR}/${key.name}.pub`,
      ...(rekor ? { rekorPublicKeyPath: `${HOST_KEY_DIR}/${rekor.name}.pub` } : {}),
      signedIdentity,
    });
    for (const r of covered) {
      docker[r.source] = [requirement({ type: 'matchRepoDigestOrExact' })];
      // Pulled by its mirror name, the image's signatures still name the source repository.
      docker[r.destination] = [requirement({ type: 'remapIdentity', prefix: r.destination, signedPrefix: r.source })];
    }
  }
  const attachments: Record<string, { 'use-sigstore-attachments': true }> = {};
  for (const r of i.repositories) {
    attachments[r.destination.split('/')[0]!] = { 'use-sigstore-attachments': true };
    attachments[r.source] = { 'use-sigstore-attachments': true };
  }
  if (i.repositories.length > 0) {
    files.push({ name: `registries.d/${i.name}.yaml`, content: stringify({ docker: attachments }) });
  }
  if (Object.keys(docker).length > 0) {
    files.push({
      name: 'policy.json',
      content: `${JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }], transports: { docker } }, null, 2)}\n`,
    });
    for (const [name, bytes] of keyFiles) files.push({ name: `keys/${name}.pub`, content: Buffer.from(bytes).toString('utf8') });
  }
  return { files, notes };
}
