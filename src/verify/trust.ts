import type { KeyObject } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { AirlockError, errorLine } from '../errors.js';
import { sha256, type Digest } from '../oci/digest.js';
import { keyId, parsePublicKey } from './crypto.js';

/** One trust root as it travelled: the inventory's entry and the blob's bytes. */
export interface TrustRootData {
  name: string;
  /** public-key | rekor-key | sigstore-trusted-root */
  kind: string;
  digest: Digest;
  bytes: Uint8Array;
}

export interface SigningKey {
  name: string;
  key: KeyObject;
  /** base64 sha256 of the DER SPKI: the hint Sigstore bundles made with a key carry */
  hint: string;
}

export interface LogKey {
  /** the trust root that carries it (`redhat-rekor`, or `<trusted root>#<log URL>`) */
  name: string;
  /** the trust root the key came from */
  root: string;
  /** hex sha256 of the DER SPKI, as Rekor names its log */
  logId: string;
  key: KeyObject;
}

/** A Sigstore trusted root (Fulcio CAs, Rekor and CT logs, TSAs) for keyless signatures. */
export interface CarriedTrustedRoot {
  name: string;
  root: TrustedRoot;
}

/** Trust material as data: the verifier never reads a file or the network. */
export interface TrustStore {
  keys: SigningKey[];
  logs: LogKey[];
  /** trusted roots (kind sigstore-trusted-root), for certificate-based signatures */
  trustedRoots: CarriedTrustedRoot[];
  names: string[];
}

/**
 * Turn carried trust roots into keys. Each blob's sha256 is checked against the
 * digest the inventory names, so a root altered after pack is refused here even if
 * a caller skipped the archive check.
 */
export function loadTrust(roots: readonly TrustRootData[]): TrustStore {
  const keys: SigningKey[] = [];
  const logs: LogKey[] = [];
  const trustedRoots: CarriedTrustedRoot[] = [];
  for (const r of roots) {
    const got = sha256(r.bytes);
    if (got !== r.digest) {
      throw new AirlockError('VERIFY', `trust root ${r.name}: its blob hashes to ${got}, not ${r.digest} as the inventory says: the archive was altered; get a fresh copy from the connected side`, { side: 'archive' });
    }
    try {
      if (r.kind === 'public-key') {
        const key = parsePublicKey(r.bytes);
        keys.push({ name: r.name, key, hint: keyId(key).toString('base64') });
      } else if (r.kind === 'rekor-key') {
        const key = parsePublicKey(r.bytes);
        logs.push({ name: r.name, root: r.name, logId: keyId(key).toString('hex'), key });
      } else if (r.kind === 'sigstore-trusted-root') {
        const tr = TrustedRoot.fromJSON(JSON.parse(Buffer.from(r.bytes).toString('utf8')));
        trustedRoots.push({ name: r.name, root: tr });
        for (const t of tr.tlogs) {
          const raw = t.publicKey?.rawBytes;
          if (!raw) continue;
          const key = parsePublicKey(`-----BEGIN PUBLIC KEY-----\n${Buffer.from(raw).toString('base64')}\n-----END PUBLIC KEY-----\n`);
          logs.push({ name: `${r.name}#${t.baseUrl}`, root: r.name, logId: keyId(key).toString('hex'), key });
        }
      }
    } catch (e) {
      throw new AirlockError('VERIFY', `trust root ${r.name} (${r.kind}): cannot be read (${errorLine(e)})`, { side: 'archive', cause: e });
    }
  }
  return { keys, logs, trustedRoots, names: roots.map((r) => r.name) };
}
