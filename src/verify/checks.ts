import { canonicalize } from './canonical.js';
import { Reference } from '../oci/reference.js';
import type { Digest } from '../oci/digest.js';
import type { PolicyIdentity } from '../config/trust-policy.js';
import { errorLine } from '../errors.js';
import { sha256Hex, verifyWithKey } from './crypto.js';
import { legacyKeylessBundle, verifyKeyless } from './keyless.js';
import type { CarriedTrustedRoot, LogKey, SigningKey } from './trust.js';

/** What one signature is checked against: its subject and the scope's trust material. */
export interface SignatureContext {
  subject: Digest;
  /** the image's source repository, `host/path` */
  repository: string;
  /** keys of the roots of the governing policy (or every carried key when no policy applies) */
  keys: readonly SigningKey[];
  /** carried keys outside the scope, only to say "signed by X, which this scope does not trust" */
  others: readonly SigningKey[];
  logs: readonly LogKey[];
  requireLog: boolean;
  /** Sigstore trusted roots of the scope, for certificate (keyless) signatures */
  trustedRoots?: readonly CarriedTrustedRoot[];
  /** carried trusted roots outside the scope, only to name them */
  otherTrustedRoots?: readonly CarriedTrustedRoot[];
  /** the keyless signer the policy accepts; without one, keyless signatures do not count */
  identity?: PolicyIdentity;
}

export type SignatureOutcome =
  | { ok: true; format: string; root: string; log?: string; identity?: string }
  | { ok: false; format: string; reason: string; signedBy?: string; foreign?: string };

/** Which key signed `data`: one of the scope's, one outside it, or none carried. */
export function findSigner(ctx: SignatureContext, data: Uint8Array, signature: Uint8Array): { inScope?: SigningKey; outside?: SigningKey } {
  for (const k of ctx.keys) if (verifyWithKey(k.key, data, signature)) return { inScope: k };
  for (const k of ctx.others) if (verifyWithKey(k.key, data, signature)) return { outside: k };
  return {};
}

export function outsideScope(ctx: SignatureContext, k: SigningKey): string {
  const allowed = ctx.keys.map((x) => x.name).join(', ') || 'none';
  return `signed by trust root ${k.name}, which is not a root for ${ctx.repository} (roots: ${allowed})`;
}

export function noKey(ctx: SignatureContext, what: string): string {
  return `${what} does not verify with any carried key for ${ctx.repository} (roots: ${ctx.keys.map((x) => x.name).join(', ') || 'none'}): tampered, or signed by a key that was not carried`;
}

/**
 * The simple-signing payload's claims (cosign spec SIGNATURE_SPEC.md, containers-signature
 * format): the manifest digest must be the subject's, and the identity must satisfy
 * MatchRepoDigestOrExact: we verify by digest, so the repository must be the image's
 * source repository; a tag or digest in the reference is accepted.
 */
export function checkPayloadClaims(payload: Uint8Array, ctx: SignatureContext): string | undefined {
  let v: { critical?: { identity?: { 'docker-reference'?: unknown }; image?: { 'docker-manifest-digest'?: unknown }; type?: unknown } };
  try {
    v = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return 'payload is not JSON';
  }
  const c = v?.critical;
  if (typeof c !== 'object' || c === null) return 'payload has no "critical" section';
  if (c.type !== 'cosign container image signature' && c.type !== 'atomic container signature') return `payload type ${JSON.stringify(c.type)} is not a container image signature`;
  const d = c.image?.['docker-manifest-digest'];
  if (d !== ctx.subject) return `payload names digest ${String(d)}, not ${ctx.subject}`;
  const r = c.identity?.['docker-reference'];
  if (typeof r !== 'string') return 'payload has no docker-reference';
  let name: string;
  try {
    const ref = Reference.parse(r);
    name = `${ref.registry}/${ref.repository}`;
  } catch {
    return `payload's docker-reference ${JSON.stringify(r)} is not an image reference`;
  }
  if (name !== ctx.repository) return `payload names repository ${name}, not ${ctx.repository}`;
  return undefined;
}

/** One Rekor entry as both cosign's bundle annotation and Sigstore bundles carry it. */
export interface RekorEntry {
  body: string;
  integratedTime: number;
  logIndex: number;
  /** hex */
  logID: string;
  set: Buffer;
}

/**
 * The Rekor signed entry timestamp: the log's signature over the canonical JSON
 * (RFC 8785) of {body, integratedTime, logID, logIndex}. The logID must be the ID of
 * a carried log key, and the body must be the entry for this very signature.
 */
export function checkRekorEntry(
  e: RekorEntry,
  ctx: SignatureContext,
  expect: { payloadSha256: string; signature: Uint8Array },
): { ok: true; log: string } | { ok: false; reason: string } {
  const log = ctx.logs.find((l) => l.logId === e.logID.toLowerCase());
  if (!log) {
    return { ok: false, reason: `Rekor entry was logged by log ${e.logID.slice(0, 16)}…, whose key was not carried (carried: ${ctx.logs.map((l) => l.name).join(', ') || 'none'})` };
  }
  const canonical = canonicalize({ body: e.body, integratedTime: e.integratedTime, logID: e.logID, logIndex: e.logIndex });
  if (!verifyWithKey(log.key, Buffer.from(canonical, 'utf8'), e.set)) {
    return { ok: false, reason: `Rekor signed entry timestamp does not verify with the key of log ${log.name}` };
  }
  let body: { kind?: string; spec?: { data?: { hash?: { value?: string } }; signature?: { content?: string } } };
  try {
    body = JSON.parse(Buffer.from(e.body, 'base64').toString('utf8'));
  } catch {
    return { ok: false, reason: 'Rekor entry body is not JSON' };
  }
  if (body.kind === 'hashedrekord') {
    if (body.spec?.data?.hash?.value !== expect.payloadSha256) return { ok: false, reason: 'Rekor entry is for another payload (hash differs)' };
    if (body.spec?.signature?.content !== Buffer.from(expect.signature).toString('base64')) return { ok: false, reason: 'Rekor entry is for another signature' };
  }
  return { ok: true, log: log.name };
}

/** A cosign legacy `.sig` layer: payload bytes + the signature annotation (+ optional Rekor bundle). */
export function checkSimpleSigning(
  layer: { payload: Uint8Array; signatureB64: string | undefined; bundle: string | undefined; certificate: string | undefined; chain?: string | undefined },
  ctx: SignatureContext,
): SignatureOutcome {
  const format = 'cosign simple-signing';
  const fail = (reason: string, signedBy?: string): SignatureOutcome => ({ ok: false, format, reason, ...(signedBy ? { signedBy } : {}) });
  if (!layer.signatureB64) return fail('layer has no dev.cosignproject.cosign/signature annotation');
  if (layer.certificate) return checkKeylessSimpleSigning({ ...layer, signatureB64: layer.signatureB64, certificate: layer.certificate }, ctx);
  const sig = Buffer.from(layer.signatureB64, 'base64');
  const who = findSigner(ctx, layer.payload, sig);
  if (who.outside) return { ok: false, format, reason: outsideScope(ctx, who.outside), foreign: who.outside.name };
  if (!who.inScope) return fail(noKey(ctx, 'signature over the payload'));
  const claims = checkPayloadClaims(layer.payload, ctx);
  if (claims) return fail(claims, who.inScope.name);
  if (!ctx.requireLog) return { ok: true, format, root: who.inScope.name };
  if (!layer.bundle) return fail('no Rekor bundle (dev.sigstore.cosign/bundle), and the policy requires a transparency-log entry', who.inScope.name);
  let b: { SignedEntryTimestamp?: string; Payload?: { body?: string; integratedTime?: number; logIndex?: number; logID?: string } };
  try {
    b = JSON.parse(layer.bundle);
  } catch {
    return fail('dev.sigstore.cosign/bundle is not JSON', who.inScope.name);
  }
  const p = b.Payload;
  if (!b.SignedEntryTimestamp || !p || typeof p.body !== 'string' || typeof p.integratedTime !== 'number' || typeof p.logIndex !== 'number' || typeof p.logID !== 'string') {
    return fail('dev.sigstore.cosign/bundle lacks SignedEntryTimestamp or Payload fields', who.inScope.name);
  }
  const r = checkRekorEntry(
    { body: p.body, integratedTime: p.integratedTime, logIndex: p.logIndex, logID: p.logID, set: Buffer.from(b.SignedEntryTimestamp, 'base64') },
    ctx,
    { payloadSha256: sha256Hex(layer.payload), signature: sig },
  );
  if (!r.ok) return fail(r.reason, who.inScope.name);
  return { ok: true, format, root: who.inScope.name, log: r.log };
}

/**
 * A cosign legacy `.sig` layer signed keyless (`dev.sigstore.cosign/certificate` and
 * `/chain`): checked as the v0.1 bundle it amounts to against the scope's trusted roots,
 * then the payload's claims as for a key.
 */
function checkKeylessSimpleSigning(
  layer: { payload: Uint8Array; signatureB64: string; bundle: string | undefined; certificate: string; chain?: string | undefined },
  ctx: SignatureContext,
): SignatureOutcome {
  const format = 'cosign simple-signing (keyless)';
  let bundle;
  try {
    bundle = legacyKeylessBundle({ payload: layer.payload, signatureB64: layer.signatureB64, bundle: layer.bundle, certificate: layer.certificate, chain: layer.chain });
  } catch (e) {
    return { ok: false, format, reason: `keyless annotations cannot be read (${errorLine(e)})` };
  }
  const sig = Buffer.from(layer.signatureB64, 'base64');
  const r = verifyKeyless(bundle, layer.payload, layer.payload, sig, ctx);
  if (!r.ok) return { ok: false, format, reason: r.reason, ...(r.foreign ? { foreign: r.foreign } : {}) };
  const claims = checkPayloadClaims(layer.payload, ctx);
  if (claims) return { ok: false, format, reason: claims, signedBy: r.root };
  return { ok: true, format, root: r.root, identity: `${r.subject} (${r.issuer})`, ...(r.log ? { log: r.log } : {}) };
}
