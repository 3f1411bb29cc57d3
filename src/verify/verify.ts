import type { InventoryImage, InventoryReferrer } from '../archive/inventory.js';
import { Annotation, isIndex, type Manifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import type { Digest } from '../oci/digest.js';
import { checkDsseEnvelope, checkSigstoreBundle } from './bundle.js';
import { checkSimpleSigning, type SignatureContext, type SignatureOutcome } from './checks.js';
import { policyFor, REKOR_PAIRS, type Policy } from './policy.js';
import type { TrustStore } from './trust.js';

/** Everything the verifier looks at, as data: no file, no network. */
export interface VerifyInput {
  images: readonly InventoryImage[];
  referrers: readonly InventoryReferrer[];
  /** parsed manifests by digest (images, platforms, signature and attestation manifests) */
  manifests: ReadonlyMap<string, { manifest: Manifest }>;
  /** the layer bytes of signature and attestation manifests, by digest (already size- and digest-checked) */
  blobs: ReadonlyMap<string, Uint8Array>;
  trust: TrustStore;
  policies: readonly Policy[];
}

export type SubjectStatus = 'verified' | 'unsigned' | 'invalid';

export interface SignatureResult {
  ok: boolean;
  manifest: Digest;
  kind: 'signature' | 'attestation';
  format: string;
  /** the trust root it verified with */
  root?: string;
  log?: string;
  /** the keyless signer (certificate subject and OIDC issuer) */
  identity?: string;
  /** why it does not count */
  reason?: string;
  /** a key of the scope verified it, but another check failed */
  signedBy?: string;
  /** a carried key outside the scope verified it */
  foreign?: string;
}

export interface SubjectResult {
  /** the image as the user named it */
  image: string;
  repository: string;
  digest: Digest;
  /** `os/arch[/variant]` for a platform manifest of an index */
  platform?: string;
  status: SubjectStatus;
  /** trust root a signature verified with */
  root?: string;
  /** Rekor log the verifying signature was logged in */
  log?: string;
  policy?: string;
  required: boolean;
  /** does this subject make the check fail */
  failed: boolean;
  reasons: string[];
  signatures: SignatureResult[];
}

export interface VerifyReport {
  ok: boolean;
  results: SubjectResult[];
  /** one line per failing image or platform manifest */
  failures: string[];
}

function contextFor(policy: Policy | undefined, subject: Digest, repository: string, trust: TrustStore): SignatureContext {
  if (!policy || policy.require === 'none') {
    // No policy: signatures are checked with every carried key, and a log is not required.
    // Keyless signatures need an identity, which only a policy gives: without one they do not count.
    return {
      subject,
      repository,
      keys: policy ? [] : trust.keys,
      others: policy ? trust.keys : [],
      logs: trust.logs,
      requireLog: false,
      trustedRoots: policy ? [] : trust.trustedRoots,
      otherTrustedRoots: policy ? trust.trustedRoots : [],
    };
  }
  const roots = new Set(policy.roots);
  const logRoots = new Set(policy.roots.flatMap((r) => [r, REKOR_PAIRS[r] ?? r]));
  const paired = trust.logs.filter((l) => logRoots.has(l.root));
  return {
    subject,
    repository,
    keys: trust.keys.filter((k) => roots.has(k.name)),
    others: trust.keys.filter((k) => !roots.has(k.name)),
    // A policy's logs: those of its roots (redhat → redhat-rekor, a trusted root's own tlogs); a policy over
    // user keys only, with no log of its own, accepts any carried Rekor key.
    logs: paired.length > 0 ? paired : trust.logs.filter((l) => !trust.keys.some((k) => k.name === l.root)),
    requireLog: policy.transparencyLog,
    trustedRoots: trust.trustedRoots.filter((r) => roots.has(r.name)),
    otherTrustedRoots: trust.trustedRoots.filter((r) => !roots.has(r.name)),
    ...(policy.identity ? { identity: policy.identity } : {}),
  };
}

function checkManifest(m: Manifest, kind: 'signature' | 'attestation', blobs: VerifyInput['blobs'], ctx: SignatureContext): SignatureOutcome[] {
  if (isIndex(m)) return [{ ok: false, format: 'index', reason: 'a signature cannot be an index' }];
  const out: SignatureOutcome[] = [];
  for (const l of m.layers) {
    const bytes = blobs.get(l.digest);
    const isBundle = l.mediaType.startsWith('application/vnd.dev.sigstore.bundle');
    const relevant = l.mediaType === MediaType.CosignSimpleSigning || isBundle || (kind === 'attestation' && l.mediaType === MediaType.DsseEnvelope);
    if (!relevant) continue;
    if (!bytes) {
      out.push({ ok: false, format: l.mediaType, reason: `layer ${l.digest} was not loaded` });
      continue;
    }
    if (l.mediaType === MediaType.CosignSimpleSigning) {
      const a = l.annotations ?? {};
      out.push(
        checkSimpleSigning(
          {
            payload: bytes,
            signatureB64: a[Annotation.CosignSignature],
            bundle: a[Annotation.CosignBundle],
            certificate: a[Annotation.CosignCertificate],
            chain: a[Annotation.CosignChain],
          },
          ctx,
        ),
      );
    } else if (isBundle) {
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(bytes).toString('utf8'));
      } catch {
        out.push({ ok: false, format: 'sigstore bundle', reason: 'bundle layer is not JSON' });
        continue;
      }
      out.push(checkSigstoreBundle(json, ctx));
    } else {
      out.push(checkDsseEnvelope(bytes, { ...ctx, requireLog: false }));
    }
  }
  if (out.length === 0 && kind === 'signature') out.push({ ok: false, format: 'unknown', reason: 'no simple-signing or Sigstore bundle layer' });
  return out;
}

/**
 * Verify every image and every platform manifest of an index against the policies.
 * Each ends verified (by which root), unsigned, or invalid (why). A subject fails when
 * its policy requires a signature and none verifies, or when a signature was made by a
 * trusted key but does not hold (wrong digest, wrong repository, bad log entry).
 * Platform manifests of a verified index may be unsigned: the index's signature binds
 * their digests (image-spec image-index.md: children are named by digest).
 */
export function verifyImages(input: VerifyInput): VerifyReport {
  const results: SubjectResult[] = [];
  const bySubject = new Map<string, InventoryReferrer[]>();
  for (const r of input.referrers) {
    if (r.kind !== 'signature' && r.kind !== 'attestation') continue;
    const list = bySubject.get(r.subject) ?? [];
    if (!list.some((x) => x.digest === r.digest)) list.push(r);
    bySubject.set(r.subject, list);
  }
  for (const im of input.images) {
    const policy = policyFor(input.policies, { repository: im.repository, ...(im.tag !== undefined ? { tag: im.tag } : {}), digest: im.digest });
    const required = policy?.require === 'signature';
    const subjects: { digest: Digest; platform?: string }[] = [
      { digest: im.digest },
      ...im.platforms.map((p) => ({
        digest: p.digest,
        platform: p.platform ? [p.platform.os, p.platform.architecture, p.platform.variant].filter(Boolean).join('/') : 'unknown platform',
      })),
    ];
    let top: SubjectResult | undefined;
    for (const s of subjects) {
      const ctx = contextFor(policy, s.digest, im.repository, input.trust);
      const sigs: SignatureResult[] = [];
      for (const r of bySubject.get(s.digest) ?? []) {
        const m = input.manifests.get(r.digest);
        if (!m) {
          sigs.push({ ok: false, manifest: r.digest, kind: r.kind as 'signature', format: 'unknown', reason: 'manifest not in the archive' });
          continue;
        }
        for (const o of checkManifest(m.manifest, r.kind as 'signature' | 'attestation', input.blobs, ctx)) {
          sigs.push({ ...o, manifest: r.digest, kind: r.kind as 'signature' | 'attestation' });
        }
      }
      const signatures = sigs.filter((x) => x.kind === 'signature');
      const good = signatures.find((x) => x.ok) as (SignatureResult & { root: string; log?: string }) | undefined;
      // Made by a key of the scope, but a check failed (digest, repository, log, statement): always an alarm.
      const bad = sigs.filter((x) => !x.ok && x.signedBy !== undefined);
      const why = (list: SignatureResult[]) => [...new Set(list.map((x) => `${x.format}: ${x.reason ?? 'failed'}`))];
      let status: SubjectStatus;
      let reasons: string[];
      if (bad.length > 0) {
        status = 'invalid';
        reasons = why(bad);
      } else if (good) {
        status = 'verified';
        reasons = [];
      } else if (required && signatures.length > 0) {
        status = 'invalid';
        reasons = why(signatures.filter((x) => !x.ok));
      } else {
        // Signatures by keys outside the scope, or by keys not carried, do not count.
        status = 'unsigned';
        reasons = why(sigs.filter((x) => !x.ok));
      }
      let failed = status === 'invalid' || (required && status !== 'verified');
      if (required && status === 'unsigned') {
        if (s.platform !== undefined && top?.status === 'verified') {
          failed = false;
          reasons.push(`not signed itself; its verified index ${top.digest} names it by digest`);
        } else {
          reasons.push(`no signature, and policy ${policy!.name} requires one by ${policy!.roots.join(' or ')}`);
        }
      }
      const res: SubjectResult = {
        image: im.source,
        repository: im.repository,
        digest: s.digest,
        ...(s.platform !== undefined ? { platform: s.platform } : {}),
        status,
        ...(good ? { root: good.root } : {}),
        ...(good?.log ? { log: good.log } : {}),
        ...(policy ? { policy: policy.name } : {}),
        required,
        failed,
        reasons,
        signatures: sigs,
      };
      if (s.platform === undefined) top = res;
      results.push(res);
    }
  }
  const failures = results
    .filter((r) => r.failed)
    .map((r) => `${r.image}${r.platform ? ` [${r.platform}]` : ''} (${r.digest.slice(0, 19)}…): ${r.status}: ${r.reasons.join('; ') || 'no valid signature'}`);
  return { ok: failures.length === 0, results, failures };
}
