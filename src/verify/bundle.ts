import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { digestHex } from '../oci/digest.js';
import { errorLine } from '../errors.js';
import { checkRekorEntry, findSigner, noKey, outsideScope, type SignatureContext, type SignatureOutcome } from './checks.js';
import { dssePae, sha256Hex } from './crypto.js';
import { verifyKeyless } from './keyless.js';
import type { SigningKey } from './trust.js';

const EMPTY_ROOT = TrustedRoot.fromJSON({
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [],
  certificateAuthorities: [],
  ctlogs: [],
  timestampAuthorities: [],
});

/**
 * cosign's simple-signing payload, byte for byte as cosign's Go code marshals it. A
 * message-signature bundle does not carry its payload: the verifier rebuilds it for
 * the image it checks, and the bundle's message digest must be that payload's hash.
 */
export function simpleSigningPayload(repository: string, digest: string): Buffer {
  return Buffer.from(
    `{"critical":{"identity":{"docker-reference":${JSON.stringify(repository)}},"image":{"docker-manifest-digest":${JSON.stringify(digest)}},"type":"cosign container image signature"},"optional":null}`,
    'utf8',
  );
}

/** Check the signature over `data` with @sigstore/verify (ECDSA, RSA) and a key finder that returns `key`. */
function sigstoreVerifies(bundle: Bundle, data: Buffer | undefined, key: SigningKey): boolean {
  // Transparency-log entries are checked by checkRekorEntry (with their own reasons); here only the signature.
  const bare = { ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries: [], timestampVerificationData: undefined } } as Bundle;
  const verifier = new Verifier(toTrustMaterial(EMPTY_ROOT, () => ({ publicKey: key.key, validFor: () => true })), {
    tlogThreshold: 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  try {
    verifier.verify(toSignedEntity(bare, data));
    return true;
  } catch {
    return false;
  }
}

/**
 * A Sigstore bundle (v0.1–v0.3) that signs an image: a message signature over the
 * image's simple-signing payload, or a DSSE envelope whose in-toto statement names
 * the image's digest. Made with a key (public-key hint) or keyless (a Fulcio
 * certificate, checked against the scope's Sigstore trusted roots and identity).
 */
export function checkSigstoreBundle(json: unknown, ctx: SignatureContext): SignatureOutcome {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (e) {
    return { ok: false, format: 'sigstore bundle', reason: `not a valid Sigstore bundle (${errorLine(e)})` };
  }
  const format = `sigstore bundle ${bundle.mediaType.replace(/^application\/vnd\.dev\.sigstore\.bundle/, '').replace(/^\+json;version=/, 'v').replace(/^\.v/, 'v').replace(/\+json$/, '')}`;
  const fail = (reason: string, signedBy?: string): SignatureOutcome => ({ ok: false, format, reason, ...(signedBy ? { signedBy } : {}) });
  if (bundle.verificationMaterial.content.$case !== 'publicKey') return checkKeylessBundle(bundle, format, ctx);
  let signedBy: SigningKey;
  let tlogExpect: { payloadSha256: string; signature: Uint8Array };
  const content = bundle.content;
  if (content.$case === 'messageSignature') {
    const ms = content.messageSignature;
    const payload = simpleSigningPayload(ctx.repository, ctx.subject);
    const sig = ms.signature;
    const who = findSigner(ctx, payload, sig);
    if (who.outside) return { ok: false, format, reason: outsideScope(ctx, who.outside), foreign: who.outside.name };
    if (!who.inScope) {
      // Tell a payload for another image or repository from a bad signature.
      const md = ms.messageDigest?.digest;
      if (md && Buffer.from(md).toString('hex') !== sha256Hex(payload)) {
        return fail(`message digest is not that of the signing payload for ${ctx.repository}@${ctx.subject}: it signs another image or repository`);
      }
      return fail(noKey(ctx, 'message signature'));
    }
    // @sigstore/core cannot check Ed25519 message signatures (FIELD-NOTES); node:crypto did above.
    if (who.inScope.key.asymmetricKeyType !== 'ed25519' && !sigstoreVerifies(bundle, payload, who.inScope)) {
      return fail('@sigstore/verify rejects the message signature', who.inScope.name);
    }
    signedBy = who.inScope;
    tlogExpect = { payloadSha256: sha256Hex(payload), signature: sig };
  } else {
    const env = content.dsseEnvelope;
    const sig = env.signatures[0]?.sig;
    if (!sig) return fail('DSSE envelope has no signature');
    const pae = dssePae(env.payloadType, env.payload);
    const who = findSigner(ctx, pae, sig);
    if (who.outside) return { ok: false, format, reason: outsideScope(ctx, who.outside), foreign: who.outside.name };
    if (!who.inScope) return fail(noKey(ctx, 'DSSE signature'));
    const claim = checkStatementSubject(env.payload, ctx);
    if (claim) return fail(claim, who.inScope.name);
    signedBy = who.inScope;
    tlogExpect = { payloadSha256: sha256Hex(env.payload), signature: sig };
  }
  if (!ctx.requireLog) return { ok: true, format, root: signedBy.name };
  const entry = bundle.verificationMaterial.tlogEntries[0];
  const set = entry?.inclusionPromise?.signedEntryTimestamp;
  if (!entry || !set) return fail('no Rekor entry with a signed entry timestamp, and the policy requires a transparency-log entry', signedBy.name);
  const r = checkRekorEntry(
    {
      body: Buffer.from(entry.canonicalizedBody).toString('base64'),
      integratedTime: Number(entry.integratedTime),
      logIndex: Number(entry.logIndex),
      logID: Buffer.from(entry.logId.keyId).toString('hex'),
      set: Buffer.from(set),
    },
    ctx,
    tlogExpect,
  );
  if (!r.ok) return fail(r.reason, signedBy.name);
  return { ok: true, format, root: signedBy.name, log: r.log };
}

/** A certificate bundle: the signature and chain by verifyKeyless, then the claims as for a key. */
function checkKeylessBundle(bundle: Bundle, format: string, ctx: SignatureContext): SignatureOutcome {
  format = `${format} (keyless)`;
  const content = bundle.content;
  let r;
  if (content.$case === 'messageSignature') {
    // The verifier rebuilds the payload for this image: a bundle for another image or repository fails here.
    const payload = simpleSigningPayload(ctx.repository, ctx.subject);
    const md = content.messageSignature.messageDigest?.digest;
    if (md && Buffer.from(md).toString('hex') !== sha256Hex(payload)) {
      return { ok: false, format, reason: `message digest is not that of the signing payload for ${ctx.repository}@${ctx.subject}: it signs another image or repository, or was tampered with` };
    }
    r = verifyKeyless(bundle, payload, payload, content.messageSignature.signature, ctx);
    if (!r.ok) return { ok: false, format, reason: r.reason, ...(r.foreign ? { foreign: r.foreign } : {}) };
  } else {
    const env = content.dsseEnvelope;
    const sig = env.signatures[0]?.sig;
    if (!sig) return { ok: false, format, reason: 'DSSE envelope has no signature' };
    r = verifyKeyless(bundle, undefined, dssePae(env.payloadType, env.payload), sig, ctx);
    if (!r.ok) return { ok: false, format, reason: r.reason, ...(r.foreign ? { foreign: r.foreign } : {}) };
    const claim = checkStatementSubject(env.payload, ctx);
    if (claim) return { ok: false, format, reason: claim, signedBy: r.root };
  }
  return { ok: true, format, root: r.root, identity: `${r.subject} (${r.issuer})`, ...(r.log ? { log: r.log } : {}) };
}

/** An in-toto statement must name the subject's digest (in-toto Statement v1 `subject[].digest`). */
export function checkStatementSubject(payload: Uint8Array, ctx: SignatureContext): string | undefined {
  let st: { subject?: { name?: string; digest?: Record<string, string> }[] };
  try {
    st = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return 'DSSE payload is not JSON';
  }
  const hex = digestHex(ctx.subject);
  if (!Array.isArray(st.subject) || !st.subject.some((s) => s?.digest?.sha256 === hex)) {
    return `in-toto statement does not name ${ctx.subject} as a subject`;
  }
  return undefined;
}

/** A DSSE envelope as cosign stores it in a `.att` layer (JSON, base64 payload and signatures). */
export function checkDsseEnvelope(bytes: Uint8Array, ctx: SignatureContext): SignatureOutcome {
  const format = 'DSSE attestation';
  let env: { payloadType?: string; payload?: string; signatures?: { sig?: string }[] };
  try {
    env = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { ok: false, format, reason: 'DSSE envelope is not JSON' };
  }
  if (typeof env.payloadType !== 'string' || typeof env.payload !== 'string' || !Array.isArray(env.signatures)) {
    return { ok: false, format, reason: 'DSSE envelope lacks payloadType, payload or signatures' };
  }
  const payload = Buffer.from(env.payload, 'base64');
  const pae = dssePae(env.payloadType, payload);
  for (const s of env.signatures) {
    if (typeof s?.sig !== 'string') continue;
    const sig = Buffer.from(s.sig, 'base64');
    const who = findSigner(ctx, pae, sig);
    if (who.outside) return { ok: false, format, reason: outsideScope(ctx, who.outside), foreign: who.outside.name };
    if (who.inScope) {
      const claim = checkStatementSubject(payload, ctx);
      if (claim) return { ok: false, format, reason: claim, signedBy: who.inScope.name };
      return { ok: true, format, root: who.inScope.name };
    }
  }
  return { ok: false, format, reason: noKey(ctx, 'DSSE signature') };
}

