/**
 * Keyless (Fulcio certificate) signing for tests, all on 127.0.0.1 with `@sigstore/mock`:
 *
 * - `startKeyless()` starts a Fulcio CA (served over HTTP, `POST /api/v2/signingCert`, with a CT log
 *   that embeds an SCT in each certificate), a second, untrusted Fulcio CA, a Rekor, and a "late"
 *   Rekor whose clock runs an hour after the certificates expire (signatures logged there fall
 *   outside their certificate's validity). `trustedRoot()` is the `trusted_root.json` naming the
 *   trusted CA, both Rekor keys and the CT key.
 * - `signKeyless(world, payload, { issuer, subject })` asks Fulcio for a certificate for an
 *   ephemeral P-256 key with that OIDC identity (an unsigned JWT: the mock only decodes it), signs
 *   the payload the way cosign does (ECDSA P-256, SHA-256, DER), and logs a `hashedrekord` entry
 *   naming the certificate.
 * - `legacyAnnotations(sig)` are the `.sig` layer annotations cosign writes for it
 *   (signature, certificate, chain, bundle); `bundleV03(sig)` the Sigstore bundle v0.3.
 *
 * Clocks: certificates are issued at a fixed second T just after start (valid T…T+10 min), the
 * Rekor logs at T+30 s, the late Rekor at T+1 h. Nothing in a test waits for real time.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fulcioHandler, initializeCA, initializeCTLog } from '@sigstore/mock';
import { AirlockError } from '../../src/errors.js';
import { logIntoto, startRekorMock, tlogInstanceJson, type CosignRekorBundle, type RekorMock } from './rekor.js';

export interface FulcioMock {
  url: string;
  rootDer: Buffer;
  rootPem: string;
  stop(): Promise<void>;
}

export interface KeylessWorld {
  fulcio: FulcioMock;
  /** a CA no trusted root names */
  otherFulcio: FulcioMock;
  rekor: RekorMock;
  /** logs an hour after the certificates expired */
  lateRekor: RekorMock;
  ctKey: KeyObject;
  ctLogId: Buffer;
  /** the certificates' notBefore */
  issuedAt: Date;
  /** `trusted_root.json` (Sigstore protobuf-specs TrustedRoot, JSON) for `fulcio`, both Rekors and the CT log */
  trustedRoot(): Record<string, unknown>;
  stop(): Promise<void>;
}

export interface KeylessSignature {
  payload: Buffer;
  signature: Buffer;
  certificatePem: string;
  /** the issuing CA's certificate (cosign's `dev.sigstore.cosign/chain`) */
  chainPem: string;
  certificateDer: Buffer;
  /** Rekor's answer for the entry (undefined when not logged) */
  entry?: RekorEntry;
}

interface RekorEntry {
  body: string;
  integratedTime: number;
  logID: string;
  logIndex: number;
  verification: {
    signedEntryTimestamp: string;
    inclusionProof?: { logIndex: number; rootHash: string; treeSize: number; hashes: string[]; checkpoint: string };
  };
}

function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

function serve(handler: ReturnType<typeof fulcioHandler>): Promise<{ url: string; stop(): Promise<void> }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== handler.path) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      handler
        .fn(Buffer.concat(chunks).toString('utf8'))
        .then(({ statusCode, response, contentType }) =>
          res.writeHead(statusCode, { 'content-type': contentType ?? 'text/plain' }).end(typeof response === 'string' ? response : Buffer.from(response.buffer, response.byteOffset, response.byteLength)),
        )
        .catch((e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e)));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        stop: () =>
          new Promise<void>((res, rej) => {
            server.closeAllConnections();
            server.close((err) => (err ? rej(err) : res()));
          }),
      });
    });
  });
}

async function startFulcio(clock: Date, ctLog?: Awaited<ReturnType<typeof initializeCTLog>>): Promise<FulcioMock> {
  const ca = await initializeCA(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }), ctLog, clock);
  const s = await serve(fulcioHandler(ca));
  const rootDer = Buffer.from(ca.rootCertificate.buffer, ca.rootCertificate.byteOffset, ca.rootCertificate.byteLength);
  return { url: s.url, rootDer, rootPem: pem('CERTIFICATE', rootDer), stop: s.stop };
}

export async function startKeyless(): Promise<KeylessWorld> {
  // T: a whole second a little after now, so the CA's self-signed root (notBefore = real now) is
  // already valid when the certificates it issues start.
  const issuedAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2000);
  const ctPair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ctLog = await initializeCTLog(ctPair, issuedAt);
  const [fulcio, otherFulcio, rekor, lateRekor] = await Promise.all([
    startFulcio(issuedAt, ctLog),
    startFulcio(issuedAt),
    startRekorMock({ clock: new Date(issuedAt.getTime() + 30_000) }),
    startRekorMock({ clock: new Date(issuedAt.getTime() + 3600_000) }),
  ]);
  const ctDer = ctPair.publicKey.export({ type: 'spki', format: 'der' });
  const ctLogId = Buffer.from(ctLog.logID.buffer, ctLog.logID.byteOffset, ctLog.logID.byteLength);
  return {
    fulcio,
    otherFulcio,
    rekor,
    lateRekor,
    ctKey: ctPair.publicKey,
    ctLogId,
    issuedAt,
    trustedRoot: () => ({
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [tlogInstanceJson(rekor), tlogInstanceJson(lateRekor)],
      certificateAuthorities: [
        {
          subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
          uri: fulcio.url,
          certChain: { certificates: [{ rawBytes: fulcio.rootDer.toString('base64') }] },
          validFor: { start: '2000-01-01T00:00:00Z' },
        },
      ],
      ctlogs: [
        {
          baseUrl: 'http://ctlog.invalid',
          hashAlgorithm: 'SHA2_256',
          publicKey: { rawBytes: ctDer.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: '2000-01-01T00:00:00Z' } },
          logId: { keyId: ctLogId.toString('base64') },
        },
      ],
      timestampAuthorities: [],
    }),
    stop: async () => {
      await Promise.all([fulcio.stop(), otherFulcio.stop(), rekor.stop(), lateRekor.stop()]);
    },
  };
}

/** An unsigned JWT: the mock Fulcio decodes the token without checking it. */
function oidcToken(issuer: string, subject: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: issuer, sub: subject, aud: 'sigstore' })}.`;
}

async function postJson(url: string, body: unknown): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) });
  } catch (e) {
    throw new AirlockError('NETWORK', `${url}: cannot post`, { cause: e });
  }
  const text = await res.text();
  if (res.status !== 201) throw new AirlockError('REGISTRY', `${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return text;
}

/**
 * Sign `payload` keyless: certificate from `fulcio` (default the trusted one) for the identity,
 * ECDSA signature, and a hashedrekord entry in `rekor` (default the world's; `null` = not logged).
 */
export async function signKeyless(
  world: KeylessWorld,
  payload: Buffer,
  o: { issuer: string; subject: string; fulcio?: FulcioMock; rekor?: RekorMock | null },
): Promise<KeylessSignature> {
  const { privateKey, certificatePem, chainPem, certificateDer } = await issueCertificate(world, o);
  const signature = sign('sha256', payload, privateKey);
  const out: KeylessSignature = { payload, signature, certificatePem, chainPem, certificateDer };
  const rekor = o.rekor === undefined ? world.rekor : o.rekor;
  if (rekor) {
    const map = JSON.parse(
      await postJson(`${rekor.url}/api/v1/log/entries`, {
        apiVersion: '0.0.1',
        kind: 'hashedrekord',
        spec: {
          data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
          // cosign logs the PEM certificate in place of a public key for keyless signatures
          signature: { content: signature.toString('base64'), publicKey: { content: Buffer.from(certificatePem).toString('base64') } },
        },
      }),
    ) as Record<string, RekorEntry>;
    const entry = Object.values(map)[0];
    if (!entry?.verification?.signedEntryTimestamp) throw new AirlockError('INTERNAL', 'rekor mock returned no SET');
    out.entry = entry;
  }
  return out;
}

/** A Fulcio certificate for a fresh P-256 key with this OIDC identity (issuer, subject). */
async function issueCertificate(
  world: KeylessWorld,
  o: { issuer: string; subject: string; fulcio?: FulcioMock },
): Promise<{ privateKey: KeyObject; certificatePem: string; chainPem: string; certificateDer: Buffer }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const fulcio = o.fulcio ?? world.fulcio;
  const answer = JSON.parse(
    await postJson(`${fulcio.url}/api/v2/signingCert`, {
      credentials: { oidcIdentityToken: oidcToken(o.issuer, o.subject) },
      publicKeyRequest: { publicKey: { algorithm: 'ECDSA', content: publicKey.export({ type: 'spki', format: 'pem' }).toString() } },
    }),
  ) as { signedCertificateEmbeddedSct: { chain: { certificates: string[] } } };
  const [certificatePem, ...chain] = answer.signedCertificateEmbeddedSct.chain.certificates;
  if (!certificatePem) throw new AirlockError('INTERNAL', 'fulcio mock returned no certificate');
  const certificateDer = Buffer.from(certificatePem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64');
  return { privateKey, certificatePem, chainPem: chain.join(''), certificateDer };
}

/**
 * A keyless DSSE attestation (in-toto statement) as a Sigstore bundle v0.1: the envelope signed
 * with a Fulcio certificate's key and logged in the world's Rekor as an `intoto` v0.0.2 entry
 * (the mock keeps `dsse` entries as proposed, see FIELD-NOTES), inclusion promise only.
 */
export async function keylessDsseBundle(world: KeylessWorld, statement: unknown, o: { issuer: string; subject: string }): Promise<Record<string, unknown>> {
  const { privateKey, certificatePem, certificateDer } = await issueCertificate(world, o);
  const payloadType = 'application/vnd.in-toto+json';
  const payload = Buffer.from(JSON.stringify(statement));
  const type = Buffer.from(payloadType);
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
  const sig = sign('sha256', pae, privateKey).toString('base64');
  const envelope = { payloadType, payload: payload.toString('base64'), signatures: [{ keyid: '', sig }] };
  const logged = await logIntoto(world.rekor.url, { envelopeJson: Buffer.from(JSON.stringify(envelope)), publicKeyPem: certificatePem });
  const p = logged.Payload;
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
    verificationMaterial: {
      x509CertificateChain: { certificates: [{ rawBytes: certificateDer.toString('base64') }] },
      tlogEntries: [
        {
          logIndex: String(p.logIndex),
          logId: { keyId: Buffer.from(p.logID, 'hex').toString('base64') },
          kindVersion: { kind: 'intoto', version: '0.0.2' },
          integratedTime: String(p.integratedTime),
          inclusionPromise: { signedEntryTimestamp: logged.SignedEntryTimestamp },
          canonicalizedBody: p.body,
        },
      ],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    dsseEnvelope: envelope,
  };
}

/** cosign's `dev.sigstore.cosign/bundle` value for the entry. */
export function cosignBundle(sig: KeylessSignature): CosignRekorBundle | undefined {
  const e = sig.entry;
  if (!e) return undefined;
  return { SignedEntryTimestamp: e.verification.signedEntryTimestamp, Payload: { body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID } };
}

/** The annotations of a keyless cosign `.sig` layer (cosign spec SIGNATURE_SPEC.md). */
export function legacyAnnotations(sig: KeylessSignature): Record<string, string> {
  const b = cosignBundle(sig);
  return {
    'dev.cosignproject.cosign/signature': sig.signature.toString('base64'),
    'dev.sigstore.cosign/certificate': sig.certificatePem,
    'dev.sigstore.cosign/chain': sig.chainPem,
    ...(b ? { 'dev.sigstore.cosign/bundle': JSON.stringify(b) } : {}),
  };
}

/** A Sigstore bundle v0.3 with the leaf certificate, a message signature and the Rekor entry (SET and inclusion proof). */
export function bundleV03(sig: KeylessSignature): Record<string, unknown> {
  const e = sig.entry;
  const hexB64 = (h: string) => Buffer.from(h, 'hex').toString('base64');
  const p = e?.verification.inclusionProof;
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: {
      certificate: { rawBytes: sig.certificateDer.toString('base64') },
      tlogEntries: e
        ? [
            {
              logIndex: String(e.logIndex),
              logId: { keyId: hexB64(e.logID) },
              kindVersion: { kind: 'hashedrekord', version: '0.0.1' },
              integratedTime: String(e.integratedTime),
              inclusionPromise: { signedEntryTimestamp: e.verification.signedEntryTimestamp },
              ...(p
                ? { inclusionProof: { logIndex: String(p.logIndex), rootHash: hexB64(p.rootHash), treeSize: String(p.treeSize), hashes: p.hashes.map(hexB64), checkpoint: { envelope: p.checkpoint } } }
                : {}),
              canonicalizedBody: e.body,
            },
          ]
        : [],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(sig.payload).digest('base64') },
      signature: sig.signature.toString('base64'),
    },
  };
}
