/**
 * A Rekor (v1 API) for tests: `@sigstore/mock`'s transparency-log handler served for real from
 * 127.0.0.1 on an ephemeral port (its nock interceptors do not catch undici, see FIELD-NOTES).
 *
 * - `startRekorMock()` → `{ url, publicKeyPem, publicKey, stop() }`
 * - `logHashedRekord(url, { payload, signature, publicKeyPem })` posts the `hashedrekord` entry cosign makes
 *   for a signature and returns the `dev.sigstore.cosign/bundle` annotation value (Rekor's SET + payload).
 * - `verifyCosignBundleSet(bundle, publicKey)` checks the SET the way cosign does.
 *
 * The mock picks a random log index for every entry, so anything that embeds a Rekor entry differs from
 * run to run even with deterministic keys. `integratedTime` comes from `clock` (fixed by default).
 */
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { initializeTLog, rekorHandler } from '@sigstore/mock';
import { AirlockError } from '../../src/errors.js';

/** 2024-01-01T00:00:00Z: the fixed time all fixtures claim. */
export const FIXTURE_TIME = new Date('2024-01-01T00:00:00Z');

export interface RekorMock {
  /** base URL, `http://127.0.0.1:<port>` */
  url: string;
  /** the log's ECDSA P-256 public key (what `REKOR-signing-key` / `rekor.pub` would hold) */
  publicKeyPem: string;
  publicKey: KeyObject;
  /** number of entries logged so far */
  readonly entries: number;
  stop(): Promise<void>;
}

export async function startRekorMock(opts: { clock?: Date } = {}): Promise<RekorMock> {
  const keyPair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  let handler: ReturnType<typeof rekorHandler> | undefined;
  let entries = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !handler || req.url?.split('?')[0] !== handler.path) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      handler
        .fn(Buffer.concat(chunks).toString('utf8'))
        .then(({ statusCode, response, contentType }) => {
          if (statusCode < 300) entries++;
          res.writeHead(statusCode, { 'content-type': contentType ?? 'text/plain' }).end(response);
        })
        .catch((e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const tlog = await initializeTLog(url, keyPair, opts.clock ?? FIXTURE_TIME);
  handler = rekorHandler(tlog);
  return {
    url,
    publicKey: keyPair.publicKey,
    publicKeyPem: keyPair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    get entries() {
      return entries;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** The value of cosign's `dev.sigstore.cosign/bundle` annotation (cosign pkg/oci RekorBundle). */
export interface CosignRekorBundle {
  SignedEntryTimestamp: string;
  Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
}

interface RekorLogEntry {
  body: string;
  integratedTime: number;
  logID: string;
  logIndex: number;
  verification?: { signedEntryTimestamp?: string };
}

/**
 * Log a DSSE envelope (a cosign attestation) as an `intoto` v0.0.2 entry, the kind `cosign attest` makes,
 * and return the bundle annotation value. `envelopeJson` are the exact bytes stored in the `.att` layer.
 * The entry double-encodes payload and signature (base64 of the envelope's base64 strings), as Rekor's
 * intoto v0.0.2 type expects; `hash` is the sha256 of the envelope bytes, `payloadHash` of the payload.
 * (FIELD-NOTES: the mock records `dsse` entries as proposed, so DSSE is logged as `intoto`.)
 */
export async function logIntoto(
  rekorUrl: string,
  entry: { envelopeJson: Uint8Array; publicKeyPem: string },
): Promise<CosignRekorBundle> {
  const env = JSON.parse(Buffer.from(entry.envelopeJson).toString('utf8')) as {
    payloadType: string;
    payload: string;
    signatures: { keyid?: string; sig: string }[];
  };
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  const publicKey = b64(entry.publicKeyPem);
  return postEntry(rekorUrl, {
    apiVersion: '0.0.2',
    kind: 'intoto',
    spec: {
      content: {
        envelope: {
          payloadType: env.payloadType,
          payload: b64(env.payload),
          signatures: env.signatures.map((s) => ({ ...(s.keyid ? { keyid: s.keyid } : {}), sig: b64(s.sig), publicKey })),
        },
        hash: { algorithm: 'sha256', value: createHash('sha256').update(entry.envelopeJson).digest('hex') },
        payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(Buffer.from(env.payload, 'base64')).digest('hex') },
      },
    },
  });
}

/**
 * The `tlogs[]` entry of a Sigstore `trusted_root.json` for this mock, so verifiers can trust it
 * (`TrustedRoot.fromJSON({ mediaType, tlogs: [tlogInstanceJson(mock)], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] })`).
 */
export function tlogInstanceJson(mock: Pick<RekorMock, 'url' | 'publicKey'>): Record<string, unknown> {
  const der = mock.publicKey.export({ type: 'spki', format: 'der' });
  return {
    baseUrl: mock.url,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: der.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: '2000-01-01T00:00:00Z' } },
    logId: { keyId: createHash('sha256').update(der).digest('base64') },
  };
}

/** Log a cosign signature as a `hashedrekord` v0.0.1 entry and return the bundle annotation value. */
export async function logHashedRekord(
  rekorUrl: string,
  entry: { payload: Uint8Array; signature: Uint8Array; publicKeyPem: string },
): Promise<CosignRekorBundle> {
  const proposed = {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(entry.payload).digest('hex') } },
      signature: {
        content: Buffer.from(entry.signature).toString('base64'),
        publicKey: { content: Buffer.from(entry.publicKeyPem, 'utf8').toString('base64') },
      },
    },
  };
  return postEntry(rekorUrl, proposed);
}

async function postEntry(rekorUrl: string, proposed: unknown): Promise<CosignRekorBundle> {
  let res: Response;
  try {
    res = await fetch(`${rekorUrl}/api/v1/log/entries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(proposed),
    });
  } catch (e) {
    throw new AirlockError('NETWORK', `rekor ${rekorUrl}: cannot post entry`, { cause: e });
  }
  const text = await res.text();
  if (res.status !== 201) throw new AirlockError('REGISTRY', `rekor ${rekorUrl}: HTTP ${res.status} ${text.slice(0, 200)}`);
  const map = JSON.parse(text) as Record<string, RekorLogEntry>;
  const logged = Object.values(map)[0];
  const set = logged?.verification?.signedEntryTimestamp;
  if (!logged || !set) throw new AirlockError('REGISTRY', `rekor ${rekorUrl}: answer has no entry with a signedEntryTimestamp`);
  return {
    SignedEntryTimestamp: set,
    Payload: { body: logged.body, integratedTime: logged.integratedTime, logIndex: logged.logIndex, logID: logged.logID },
  };
}

/**
 * Verify a bundle's SET: an ECDSA/SHA-256 signature by the log over the canonical JSON (RFC 8785: keys
 * sorted, no spaces) of `{body, integratedTime, logID, logIndex}`.
 */
export function verifyCosignBundleSet(bundle: CosignRekorBundle, publicKey: KeyObject | string): boolean {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const p = bundle.Payload;
  const canonical = JSON.stringify({ body: p.body, integratedTime: p.integratedTime, logID: p.logID, logIndex: p.logIndex });
  return verify('sha256', Buffer.from(canonical, 'utf8'), key, Buffer.from(bundle.SignedEntryTimestamp, 'base64'));
}
