/**
 * Cosign-compatible key material and signing primitives for test fixtures.
 *
 * - Keys: `ecdsa` (P-256) and `ed25519` are derived deterministically from a seed; `rsa` (4096 bits, the
 *   kind Red Hat signs with) is read from `fixtures/keys/rsa-4096.test-only.pem`, a checked-in TEST-ONLY
 *   key, because generating RSA-4096 is slow and node cannot seed it.
 * - `encryptCosignKey` / `decryptCosignKey`: cosign's encrypted private key PEM (scrypt + nacl/secretbox
 *   over the PKCS#8 DER), the format `cosign generate-key-pair` writes.
 * - `signBlob` / `verifyBlob`: the signature schemes cosign uses with such keys: RSA PKCS#1 v1.5 SHA-256,
 *   ECDSA P-256 SHA-256 (ASN.1 DER signature), Ed25519 (pure, no pre-hash).
 *   RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic; ECDSA signatures are not (node uses a
 *   random nonce), so anything that embeds an ECDSA signature changes from run to run.
 * - `simpleSigningPayload`: the payload `cosign sign` signs, byte for byte as cosign's Go code marshals it.
 * - `dssePae` / `dsseEnvelope`: DSSE v1 pre-authentication encoding and envelope (what `cosign attest` stores).
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, randomBytes, scrypt, sign, verify, constants } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { AirlockError } from '../../src/errors.js';
import type { Digest } from '../../src/oci/digest.js';

export type KeyKind = 'ecdsa' | 'rsa' | 'ed25519';

export interface KeyPair {
  kind: KeyKind;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM, what `cosign.pub` holds */
  publicKeyPem: string;
  /** `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----`, what `cosign.key` holds */
  cosignEncryptedPem: string;
  password: string;
}

export interface FixtureKeys {
  ecdsa: KeyPair;
  rsa: KeyPair;
  ed25519: KeyPair;
}

export const FIXTURE_KEY_PASSWORD = 'airlock-test-only';
const DEFAULT_KEY_SEED = 'airlock-fixture-keys-v1';
const RSA_KEY_FILE = fileURLToPath(new URL('../../fixtures/keys/rsa-4096.test-only.pem', import.meta.url));

const keyCache = new Map<string, Promise<FixtureKeys>>();

/**
 * The three test key pairs, computed once per process and seed. Deterministic: the same seed gives the
 * same keys and the same encrypted PEMs (salt and nonce are derived from the seed too).
 */
export function fixtureKeys(seed: string = DEFAULT_KEY_SEED): Promise<FixtureKeys> {
  let p = keyCache.get(seed);
  if (!p) {
    p = makeKeys(seed);
    keyCache.set(seed, p);
    p.catch(() => keyCache.delete(seed));
  }
  return p;
}

/** The same derivation as `fixtureKeys`, uncached (to check determinism, or to get independent objects). */
export async function makeFixtureKeys(seed: string = DEFAULT_KEY_SEED): Promise<FixtureKeys> {
  return makeKeys(seed);
}

async function makeKeys(seed: string): Promise<FixtureKeys> {
  const rsaPem = await readFile(RSA_KEY_FILE, 'utf8');
  const rsa = createPrivateKey(rsaPem);
  const [ecdsaPair, rsaPair, edPair] = await Promise.all([
    keyPair('ecdsa', deriveEcdsaKey(seed), seed),
    keyPair('rsa', rsa, seed),
    keyPair('ed25519', deriveEd25519Key(seed), seed),
  ]);
  return { ecdsa: ecdsaPair, rsa: rsaPair, ed25519: edPair };
}

async function keyPair(kind: KeyKind, privateKey: KeyObject, seed: string): Promise<KeyPair> {
  const publicKey = createPublicKey(privateKey);
  const cosignEncryptedPem = await encryptCosignKey(privateKey, FIXTURE_KEY_PASSWORD, {
    salt: labelled(seed, `${kind}/salt`, 32),
    nonce: labelled(seed, `${kind}/nonce`, 24),
  });
  return {
    kind,
    privateKey,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    cosignEncryptedPem,
    password: FIXTURE_KEY_PASSWORD,
  };
}

/** sha256 counter-mode bytes under a label: cheap, seedable, good enough for test keys. */
function labelled(seed: string, label: string, n: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0, got = 0; got < n; i++) {
    const b = createHash('sha256').update(`${seed}\0${label}\0${i}`).digest();
    out.push(b);
    got += b.length;
  }
  return Buffer.concat(out).subarray(0, n);
}

// RFC 8410: PKCS#8 wrapping of a 32-byte Ed25519 seed.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

function deriveEd25519Key(seed: string): KeyObject {
  const raw = labelled(seed, 'ed25519', 32);
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

function deriveEcdsaKey(seed: string): KeyObject {
  for (let i = 0; ; i++) {
    const d = labelled(seed, `ecdsa/${i}`, 32);
    const n = BigInt(`0x${d.toString('hex')}`);
    if (n === 0n || n >= P256_ORDER) continue; // rejection sampling keeps d uniform in [1, n-1]
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(d);
    const pub = ecdh.getPublicKey(null, 'uncompressed');
    return createPrivateKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        d: d.toString('base64url'),
        x: pub.subarray(1, 33).toString('base64url'),
        y: pub.subarray(33, 65).toString('base64url'),
      },
      format: 'jwk',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// cosign encrypted private keys (sigstore/cosign pkg/cosign/keys.go format, read here, not copied)

export const COSIGN_PEM_LABEL = 'ENCRYPTED SIGSTORE PRIVATE KEY';
const COSIGN_PEM_LABELS = [COSIGN_PEM_LABEL, 'ENCRYPTED COSIGN PRIVATE KEY'];
const SCRYPT = { N: 32768, r: 8, p: 1 } as const;

function scryptKey(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // 128·N·r bytes is exactly node's default maxmem for cosign's parameters: give headroom.
    scrypt(password, salt, 32, { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** Encrypt a private key the way `cosign generate-key-pair` does. `salt`/`nonce` default to random bytes. */
export async function encryptCosignKey(
  privateKey: KeyObject,
  password: string,
  opts: { salt?: Uint8Array; nonce?: Uint8Array } = {},
): Promise<string> {
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  const salt = Buffer.from(opts.salt ?? randomBytes(32));
  const nonce = Buffer.from(opts.nonce ?? randomBytes(nacl.secretbox.nonceLength));
  const key = await scryptKey(password, salt, SCRYPT);
  const ciphertext = Buffer.from(nacl.secretbox(new Uint8Array(der), new Uint8Array(nonce), new Uint8Array(key)));
  // Field order and base64 byte slices as Go's encoding/json writes cosign's struct.
  const body = JSON.stringify({
    kdf: { name: 'scrypt', params: { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: ciphertext.toString('base64'),
  });
  return toPem(COSIGN_PEM_LABEL, Buffer.from(body, 'utf8'));
}

/** Decrypt a cosign encrypted private key PEM (either label). Throws AirlockError('VERIFY') on a wrong password. */
export async function decryptCosignKey(pem: string, password: string): Promise<KeyObject> {
  const m = /-----BEGIN ([A-Z ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m || !COSIGN_PEM_LABELS.includes(m[1]!)) {
    throw new AirlockError('TRUST', 'cosign key: not an ENCRYPTED SIGSTORE/COSIGN PRIVATE KEY PEM block');
  }
  let parsed: {
    kdf?: { name?: string; params?: { N?: number; r?: number; p?: number }; salt?: string };
    cipher?: { name?: string; nonce?: string };
    ciphertext?: string;
  };
  try {
    parsed = JSON.parse(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64').toString('utf8'));
  } catch (e) {
    throw new AirlockError('TRUST', 'cosign key: PEM body is not JSON', { cause: e });
  }
  const { kdf, cipher, ciphertext } = parsed;
  if (kdf?.name !== 'scrypt' || cipher?.name !== 'nacl/secretbox' || !kdf.salt || !cipher.nonce || !ciphertext) {
    throw new AirlockError('TRUST', 'cosign key: unsupported kdf or cipher (expected scrypt + nacl/secretbox)');
  }
  const params = { N: kdf.params?.N ?? SCRYPT.N, r: kdf.params?.r ?? SCRYPT.r, p: kdf.params?.p ?? SCRYPT.p };
  const key = await scryptKey(password, Buffer.from(kdf.salt, 'base64'), params);
  const der = nacl.secretbox.open(
    new Uint8Array(Buffer.from(ciphertext, 'base64')),
    new Uint8Array(Buffer.from(cipher.nonce, 'base64')),
    new Uint8Array(key),
  );
  if (!der) throw new AirlockError('VERIFY', 'cosign key: decryption failed (wrong password or corrupted key)');
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
}

function toPem(label: string, body: Buffer): string {
  const b64 = body.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

// ---------------------------------------------------------------------------------------------
// signatures

function keyKindOf(key: KeyObject): KeyKind {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'rsa';
    case 'ec':
      return 'ecdsa';
    case 'ed25519':
      return 'ed25519';
    default:
      throw new AirlockError('INTERNAL', `unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

/** Sign like cosign does with a key of this type. */
export function signBlob(privateKey: KeyObject, data: Uint8Array): Buffer {
  switch (keyKindOf(privateKey)) {
    case 'rsa':
      return sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
    case 'ecdsa':
      return sign('sha256', data, privateKey); // DER (ASN.1) signature, as Go's ecdsa.SignASN1
    case 'ed25519':
      return sign(null, data, privateKey);
  }
}

export function verifyBlob(publicKey: KeyObject | string, data: Uint8Array, signature: Uint8Array): boolean {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  switch (keyKindOf(key)) {
    case 'rsa':
      return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    case 'ecdsa':
      return verify('sha256', data, key, signature);
    case 'ed25519':
      return verify(null, data, key, signature);
  }
}

/** base64(sha256(DER SPKI)): the key hint placed in Sigstore bundles made with a plain key. */
export function publicKeyHint(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

// ---------------------------------------------------------------------------------------------
// payloads

/**
 * cosign's "simple signing" payload, exactly as cosign marshals it (Go struct order, `optional` null when
 * there are no annotations). docker-reference is the repository (`host/path`) without tag or digest.
 */
export function simpleSigningPayload(dockerReference: string, digest: Digest, optional?: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: optional ?? null,
    }),
    'utf8',
  );
}

/** DSSE v1 pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body. */
export function dssePae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.byteLength} `, 'utf8'),
    payload,
  ]);
}

export interface DsseEnvelope {
  payloadType: string;
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

/** A signed DSSE envelope (keyid empty, as cosign writes for key-based attestations). */
export function dsseEnvelope(privateKey: KeyObject, payloadType: string, payload: Uint8Array): DsseEnvelope {
  const sig = signBlob(privateKey, dssePae(payloadType, payload));
  return { payloadType, payload: Buffer.from(payload).toString('base64'), signatures: [{ keyid: '', sig: sig.toString('base64') }] };
}
