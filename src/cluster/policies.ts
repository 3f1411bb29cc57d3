import { TrustedRoot } from '@sigstore/protobuf-specs';
import { stringify } from 'yaml';
import type { TrustRootData } from '../verify/trust.js';
import { policyFor, REKOR_PAIRS, splitScope, type Policy } from '../verify/policy.js';
import type { ClusterFile } from './mirror-sets.js';

/** What a policy covers: a repository or one image (scope and mirror name), with the repositories they live in. */
interface Covered {
  source: string;
  destination: string;
  repoSource: string;
  repoDestination: string;
}

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

function pemB64(bytes: Uint8Array | string): string {
  return Buffer.from(bytes).toString('base64');
}

function toPem(label: string, der: Uint8Array): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** The Fulcio CA chain (PEM, leaf-side first) and Rekor key (PEM) of a trusted root that are in force now (no end date). */
function keylessMaterial(r: TrustRootData): { fulcioPem: string; rekorPem: string } | string {
  let tr: TrustedRoot;
  try {
    tr = TrustedRoot.fromJSON(JSON.parse(Buffer.from(r.bytes).toString('utf8')));
  } catch {
    return `trusted root ${r.name} cannot be read`;
  }
  const current = <T extends { validFor?: { end?: Date | undefined } | undefined }>(list: T[]): T | undefined => list.find((x) => !x.validFor?.end) ?? list[list.length - 1];
  const ca = current(tr.certificateAuthorities);
  const certs = ca?.certChain?.certificates ?? [];
  if (certs.length === 0) return `trusted root ${r.name} names no Fulcio CA`;
  const logs = tr.tlogs.filter((t) => t.publicKey?.rawBytes);
  const tlog = logs.find((t) => !t.publicKey?.validFor?.end) ?? logs[logs.length - 1];
  if (!tlog?.publicKey?.rawBytes) return `trusted root ${r.name} names no Rekor key`;
  return { fulcioPem: certs.map((c) => toPem('CERTIFICATE', c.rawBytes)).join(''), rekorPem: toPem('PUBLIC KEY', tlog.publicKey.rawBytes) };
}

/**
 * ClusterImagePolicy's fulcioSubject.signedEmail is the only subject form it takes. The CRD
 * asks only `^\S+@\S+$`, which a workflow URI (`…/release.yml@refs/heads/main`) also
 * passes; Fulcio puts those in a URI SAN, which signedEmail never matches, so a URI is refused.
 */
const EMAIL = /^[^\s@:/]+@[^\s@/]+$/;

/**
 * Signature policies for the cluster and for hosts, from the policies verify applied:
 *
 * - a ClusterImagePolicy (config.openshift.io/v1) per policy that requires a signature and
 *   covers mirrored repositories. Its scopes are the *source* repositories: pods name the
 *   source, the ImageDigestMirrorSet redirects the pull, and CRI-O evaluates the policy
 *   against the name the pod used; the signatures name the source too. PublicKey root with
 *   keyData (base64 PEM), rekorKeyData when the policy requires the log, and
 *   MatchRepoDigestOrExact identity. A policy over a Sigstore trusted root with a keyless
 *   identity gets FulcioCAWithRekor instead (see fulcioPolicy).
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
  /** file name under keys/ → PEM text, for keyless policies */
  const keylessFiles = new Map<string, string>();
  const docker: Record<string, unknown[]> = {};
  for (const p of i.policies) {
    if (p.require !== 'signature') continue;
    const covered: Covered[] = i.repositories
      .filter((r) => policyFor(i.policies, r.source) === p)
      .map((r) => ({ source: r.source, destination: r.destination, repoSource: r.source, repoDestination: r.destination }));
    // An individual-image scope (repo:tag or repo@digest) covers just that image, under its mirror name too.
    for (const sc of p.scopes) {
      const s = splitScope(sc);
      if (s.tag === undefined && s.digest === undefined) continue;
      const r = i.repositories.find((x) => x.source === s.repository);
      if (r) covered.push({ source: sc, destination: `${r.destination}${sc.slice(s.repository.length)}`, repoSource: r.source, repoDestination: r.destination });
    }
    if (covered.length === 0) continue;
    const keyRoots = p.roots.map((n) => byName.get(n)).filter((r): r is TrustRootData => r?.kind === 'public-key');
    const key = keyRoots[0];
    if (!key) {
      const keyless = fulcioPolicy(i.name, p, covered, byName, notes);
      if (!keyless) continue;
      files.push({ name: `clusterimagepolicy-${p.name}.yaml`, content: keyless.cip });
      for (const [n, text] of keyless.keyFiles) keylessFiles.set(n, text);
      for (const r of covered) {
        docker[r.source] = [keyless.requirement({ type: 'matchRepoDigestOrExact' })];
        docker[r.destination] = [keyless.requirement({ type: 'remapIdentity', prefix: r.repoDestination, signedPrefix: r.repoSource })];
      }
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
      docker[r.destination] = [requirement({ type: 'remapIdentity', prefix: r.repoDestination, signedPrefix: r.repoSource })];
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
    for (const [name, text] of keylessFiles) files.push({ name: `keys/${name}`, content: text });
  }
  return { files, notes };
}

/**
 * A keyless policy (a Sigstore trusted root and an identity) as a ClusterImagePolicy with
 * `policyType: FulcioCAWithRekor`: the root's current Fulcio CA chain, its current Rekor
 * key, and fulcioSubject {oidcIssuer, signedEmail}. The CRD takes only an exact email
 * subject, so a URI subject (CI workload identities) or a subjectRegExp cannot be
 * expressed: that is a note, and airlock's own verification stays the only check.
 */
function fulcioPolicy(
  prefix: string,
  p: Policy,
  covered: readonly Covered[],
  byName: ReadonlyMap<string, TrustRootData>,
  notes: string[],
): { cip: string; keyFiles: Map<string, string>; requirement: (signedIdentity: unknown) => Record<string, unknown> } | undefined {
  const root = p.roots.map((n) => byName.get(n)).find((r): r is TrustRootData => r?.kind === 'sigstore-trusted-root');
  if (!root) {
    notes.push(`policy ${p.name}: its roots (${p.roots.join(', ')}) hold neither a public key nor a Sigstore trusted root; no ClusterImagePolicy`);
    return undefined;
  }
  const id = p.identity;
  if (!id) {
    notes.push(`policy ${p.name}: trusted root ${root.name} needs an identity (issuer, subject) for a FulcioCAWithRekor ClusterImagePolicy; none written`);
    return undefined;
  }
  if (id.subject === undefined || !EMAIL.test(id.subject)) {
    notes.push(
      `policy ${p.name}: a ClusterImagePolicy matches a Fulcio subject only as an exact email (signedEmail); ${id.subject !== undefined ? `"${id.subject}"` : `subjectRegExp "${id.subjectRegExp ?? ''}"`} cannot be expressed, so none was written (airlock verify still enforces it)`,
    );
    return undefined;
  }
  const m = keylessMaterial(root);
  if (typeof m === 'string') {
    notes.push(`policy ${p.name}: ${m}; no ClusterImagePolicy`);
    return undefined;
  }
  const scopes = [...new Set(covered.map((r) => r.source))].sort();
  const cip = stringify({
    apiVersion: 'config.openshift.io/v1',
    kind: 'ClusterImagePolicy',
    metadata: { name: resourceName(prefix, p.name) },
    spec: {
      scopes,
      policy: {
        rootOfTrust: {
          policyType: 'FulcioCAWithRekor',
          fulcioCAWithRekor: {
            fulcioCAData: pemB64(m.fulcioPem),
            rekorKeyData: pemB64(m.rekorPem),
            fulcioSubject: { oidcIssuer: id.issuer, signedEmail: id.subject },
          },
        },
        signedIdentity: { matchPolicy: 'MatchRepoDigestOrExact' },
      },
    },
  });
  const caFile = `${root.name}-fulcio.pem`;
  const rekorFile = `${root.name}-rekor.pub`;
  return {
    cip,
    keyFiles: new Map([
      [caFile, m.fulcioPem],
      [rekorFile, m.rekorPem],
    ]),
    // containers-policy.json(5) sigstoreSigned with a fulcio section
    requirement: (signedIdentity) => ({
      type: 'sigstoreSigned',
      fulcio: { caPath: `${HOST_KEY_DIR}/${caFile}`, oidcIssuer: id.issuer, subjectEmail: id.subject },
      rekorPublicKeyPath: `${HOST_KEY_DIR}/${rekorFile}`,
      signedIdentity,
    }),
  };
}
