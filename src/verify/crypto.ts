import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * Signature checks the way cosign makes them with a plain key: RSA PKCS#1 v1.5 with
 * SHA-256, ECDSA (ASN.1 DER) with SHA-256, Ed25519 pure (no pre-hash). Ed25519 goes
 * through node:crypto because @sigstore/core hashes first, which OpenSSL refuses for
 * Ed25519 (FIELD-NOTES).
 */
export function verifyWithKey(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    switch (key.asymmetricKeyType) {
      case 'rsa':
        return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
      case 'ec':
        return verify('sha256', data, key, signature);
      case 'ed25519':
        return verify(null, data, key, signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** sha256 of the DER SubjectPublicKeyInfo: Rekor's log ID for its key, and the Sigstore key hint (as base64). */
export function keyId(key: KeyObject): Buffer {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest();
}

export function parsePublicKey(pem: Uint8Array | string): KeyObject {
  return createPublicKey(typeof pem === 'string' ? pem : Buffer.from(pem));
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** DSSE v1 pre-authentication encoding (DSSE protocol.md). */
export function dssePae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.byteLength} `), payload]);
}
