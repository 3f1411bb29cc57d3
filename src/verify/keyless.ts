import { X509Certificate } from 'node:crypto';
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier, type Signer } from '@sigstore/verify';
import type { PolicyIdentity } from '../config/trust-policy.js';
import { errorLine } from '../errors.js';
import type { SignatureContext } from './checks.js';
import { sha256Hex, verifyWithKey } from './crypto.js';
import type { CarriedTrustedRoot } from './trust.js';

/**
 * Keyless (Fulcio certificate) signatures, checked offline against carried Sigstore
 * trusted roots. A certificate lives ten minutes, so the signing time must come from a
 * verified timestamp (a Rekor entry's integratedTime under its SET or inclusion proof,
 * or an RFC 3161 timestamp) and the whole chain must be valid at that time
 * (Sigstore client spec, "Verification": certificate validity at the signing time).
 */

/** What verifyKeyless found: the root and identity that hold, or why not. */
export type KeylessOutcome =
  | { ok: true; root: string; issuer: string; subject: string; log?: string }
  | { ok: false; reason: string; signedBy?: string; foreign?: string };

/** The first certificate of a bundle (v0.1 x509CertificateChain, v0.2+ certificate). */
export function leafCertificate(bundle: Bundle): X509Certificate | undefined {
  const c = bundle.verificationMaterial.content;
  const der = c.$case === 'x509CertificateChain' ? c.x509CertificateChain.certificates[0]?.rawBytes : c.$case === 'certificate' ? c.certificate.rawBytes : undefined;
  if (!der) return undefined;
  try {
    return new X509Certificate(Buffer.from(der));
  } catch {
    return undefined;
  }
}

/** The reason one root rejects, and whether the root's CAs are even the certificate's issuers. */
interface Attempt {
  root: CarriedTrustedRoot;
  reason: string;
  /** the certificate chained to a CA of this root (the failure came later) */
  chained: boolean;
}

function describeError(e: unknown): string {
  const cause = (e as { cause?: unknown }).cause;
  const m = errorLine(e);
  return cause instanceof Error && !m.includes(cause.message) ? `${m} (${cause.message})` : m;
}

function tryRoot(root: CarriedTrustedRoot, bundle: Bundle, artifact: Uint8Array | undefined, requireLog: boolean): { signer: Signer } | Attempt {
  // tlog entries present are always checked (SET / inclusion proof) by the Verifier; the
  // threshold only says whether one must be present. A CT log's SCT is required when the
  // root names CT logs, as Fulcio embeds one in every certificate it issues.
  const verifier = new Verifier(toTrustMaterial(root.root), {
    tlogThreshold: requireLog ? 1 : 0,
    ctlogThreshold: root.root.ctlogs.length > 0 ? 1 : 0,
    timestampThreshold: 1,
  });
  try {
    return { signer: verifier.verify(toSignedEntity(bundle, artifact === undefined ? undefined : Buffer.from(artifact))) };
  } catch (e) {
    const text = describeError(e);
    const code = (e as { code?: string }).code;
    // A certificate error that is neither about validity at the signing time nor about SCTs means no path
    // to a CA of this root (none found, or a root with no CA at all).
    const chained = !(code === 'CERTIFICATE_ERROR' && !/not valid or expired|SCT/i.test(text));
    let reason: string;
    if (code === 'TIMESTAMP_ERROR') {
      reason = `no verified signing time (Rekor entry or RFC 3161 timestamp), so the short-lived certificate cannot be checked: ${text}`;
    } else if (code === 'CERTIFICATE_ERROR' && /not valid or expired/.test(text)) {
      reason = `signed outside the certificate's validity: the log's time (integratedTime) is not within the certificate's notBefore…notAfter (root ${root.name})`;
    } else if (code === 'CERTIFICATE_ERROR' && !chained) {
      reason = `certificate does not chain to a Fulcio CA of trusted root ${root.name}`;
    } else if (code?.startsWith('TLOG')) {
      reason = `Rekor entry does not verify with trusted root ${root.name}: ${text}`;
    } else if (code === 'SIGNATURE_ERROR') {
      reason = `signature does not verify with the certificate's key: tampered payload or signature`;
    } else {
      reason = `trusted root ${root.name} rejects it: ${text}`;
    }
    return { root, reason, chained };
  }
}

/** Does the certificate's identity satisfy the policy's? A reason when not. */
export function identityMismatch(want: PolicyIdentity, issuer: string, subject: string): string | undefined {
  if (issuer !== want.issuer) return `certificate issuer (OIDC) is ${JSON.stringify(issuer)}, the policy requires ${JSON.stringify(want.issuer)}`;
  if (want.subject !== undefined && subject !== want.subject) {
    return `certificate subject is ${JSON.stringify(subject)}, the policy requires ${JSON.stringify(want.subject)}`;
  }
  if (want.subjectRegExp !== undefined && !new RegExp(`^(?:${want.subjectRegExp})$`).test(subject)) {
    return `certificate subject ${JSON.stringify(subject)} does not match the policy's subjectRegExp ${JSON.stringify(want.subjectRegExp)}`;
  }
  return undefined;
}

/**
 * The Rekor hashedrekord entry must name this certificate (cosign logs the PEM
 * certificate as the entry's "public key"); @sigstore/verify compares only the digest
 * and the signature.
 */
function entryNamesOtherKey(bundle: Bundle, leaf: X509Certificate): string | undefined {
  for (const e of bundle.verificationMaterial.tlogEntries) {
    let body: { kind?: string; spec?: { signature?: { publicKey?: { content?: string } } } };
    try {
      body = JSON.parse(Buffer.from(e.canonicalizedBody).toString('utf8'));
    } catch {
      return 'Rekor entry body is not JSON';
    }
    const content = body.kind === 'hashedrekord' ? body.spec?.signature?.publicKey?.content : undefined;
    if (content === undefined) continue;
    const pem = Buffer.from(content, 'base64').toString('utf8');
    try {
      if (pem.includes('CERTIFICATE')) {
        if (!new X509Certificate(pem).raw.equals(leaf.raw)) return 'Rekor entry names another certificate';
      } else if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(Buffer.from(pem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64'))) {
        return 'Rekor entry names another key';
      }
    } catch {
      return 'Rekor entry names a key that cannot be read';
    }
  }
  return undefined;
}

/**
 * Verify a certificate-based bundle: the signature with the leaf's key, the chain to a
 * Fulcio CA of one of the scope's trusted roots valid at the signing time, SCTs and Rekor
 * entries with that root's logs, then the identity against the policy's. The payload's
 * claims (digest, repository, in-toto subject) are the caller's to check.
 *
 * `signedData` is what the signature covers (the payload, or the DSSE PAE) for the
 * pre-check that tells a tampered payload from an untrusted certificate.
 */
export function verifyKeyless(bundle: Bundle, artifact: Uint8Array | undefined, signedData: Uint8Array, signature: Uint8Array, ctx: SignatureContext): KeylessOutcome {
  const leaf = leafCertificate(bundle);
  if (!leaf) return { ok: false, reason: 'the certificate cannot be read (not DER X.509)' };
  const inScope = ctx.trustedRoots ?? [];
  // Not a CA of the scope: name a carried root outside the scope that does hold it, if any.
  const foreign = (): KeylessOutcome | undefined => {
    for (const root of ctx.otherTrustedRoots ?? []) {
      const r = tryRoot(root, bundle, artifact, false);
      if (!('reason' in r) || r.chained) {
        return { ok: false, reason: `certificate chains to trusted root ${root.name}, which is not a root for ${ctx.repository} (roots: ${inScope.map((x) => x.name).join(', ') || 'none'})`, foreign: root.name };
      }
    }
    return undefined;
  };
  if (inScope.length === 0) {
    return foreign() ?? { ok: false, reason: `keyless (certificate) signature, and no Sigstore trusted root is a root for ${ctx.repository} (roots: ${ctx.keys.map((k) => k.name).join(', ') || 'none'})` };
  }
  // The leaf key is checked first so that a tampered payload is named as such, not as a log mismatch.
  if (!verifyWithKey(leaf.publicKey, signedData, signature)) {
    return { ok: false, reason: "signature does not verify with the certificate's key: tampered payload or signature" };
  }
  const other = entryNamesOtherKey(bundle, leaf);
  if (other) return { ok: false, reason: other };
  const attempts: Attempt[] = [];
  for (const root of inScope) {
    const r = tryRoot(root, bundle, artifact, ctx.requireLog);
    if ('reason' in r) {
      attempts.push(r);
      continue;
    }
    const issuer = r.signer.identity?.extensions?.issuer ?? '';
    const subject = r.signer.identity?.subjectAlternativeName ?? '';
    if (!ctx.identity) {
      return { ok: false, reason: `certificate for ${subject || '(no subject)'} from ${issuer || '(no issuer)'} chains to ${root.name}, but the policy names no keyless identity (identity.issuer): keyless signatures count only with one` };
    }
    const why = identityMismatch(ctx.identity, issuer, subject);
    if (why) return { ok: false, reason: why };
    const logId = bundle.verificationMaterial.tlogEntries[0]?.logId.keyId;
    const log = logId ? ctx.logs.find((l) => l.root === root.name && l.logId === Buffer.from(logId).toString('hex'))?.name : undefined;
    return { ok: true, root: root.name, issuer, subject, ...(log ? { log } : {}) };
  }
  const chained = attempts.find((a) => a.chained);
  if (chained) return { ok: false, reason: chained.reason };
  const elsewhere = foreign();
  if (elsewhere) return elsewhere;
  return { ok: false, reason: `certificate does not chain to a Fulcio CA of ${inScope.map((x) => `trusted root ${x.name}`).join(' or ')}: issued by ${leaf.issuer.replace(/\n/g, ', ')}` };
}

/** Split concatenated PEM certificates (cosign's `dev.sigstore.cosign/chain`). */
function pemCertificates(text: string): Buffer[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).raw);
}

/**
 * A cosign legacy `.sig` layer signed keyless, as the v0.1 bundle it amounts to: the
 * certificate (+ chain) annotation as the x509 chain, the `dev.sigstore.cosign/bundle`
 * Rekor entry (SET = inclusion promise) as the tlog entry, a message signature over the
 * payload. Throws with a reason when an annotation cannot be read.
 */
export function legacyKeylessBundle(layer: { payload: Uint8Array; signatureB64: string; bundle: string | undefined; certificate: string; chain: string | undefined }): Bundle {
  const certs = [...pemCertificates(layer.certificate), ...(layer.chain ? pemCertificates(layer.chain) : [])];
  if (certs.length === 0) throw new Error('dev.sigstore.cosign/certificate holds no PEM certificate');
  const tlogEntries: unknown[] = [];
  if (layer.bundle) {
    const b = JSON.parse(layer.bundle) as { SignedEntryTimestamp?: string; Payload?: { body?: string; integratedTime?: number; logIndex?: number; logID?: string } };
    const p = b.Payload;
    if (!b.SignedEntryTimestamp || !p || typeof p.body !== 'string' || typeof p.integratedTime !== 'number' || typeof p.logIndex !== 'number' || typeof p.logID !== 'string') {
      throw new Error('dev.sigstore.cosign/bundle lacks SignedEntryTimestamp or Payload fields');
    }
    const body = JSON.parse(Buffer.from(p.body, 'base64').toString('utf8')) as { kind?: string; apiVersion?: string };
    tlogEntries.push({
      logIndex: String(p.logIndex),
      logId: { keyId: Buffer.from(p.logID, 'hex').toString('base64') },
      kindVersion: { kind: body.kind ?? '', version: body.apiVersion ?? '' },
      integratedTime: String(p.integratedTime),
      inclusionPromise: { signedEntryTimestamp: b.SignedEntryTimestamp },
      canonicalizedBody: p.body,
    });
  }
  return bundleFromJSON({
    mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
    verificationMaterial: {
      x509CertificateChain: { certificates: certs.map((c) => ({ rawBytes: c.toString('base64') })) },
      tlogEntries,
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(sha256Hex(layer.payload), 'hex').toString('base64') },
      signature: layer.signatureB64,
    },
  });
}
