import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AirlockError, type Side } from '../errors.js';

/**
 * A validated digest string such as `sha256:<64 hex>`.
 * OCI image-spec descriptor.md#digests: algorithm ":" encoded; we accept the two registered algorithms.
 */
export type Digest = string & { readonly __digest: unique symbol };

const ENCODED_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-f0-9]+)$/;

export function isDigest(s: string): s is Digest {
  const m = DIGEST_RE.exec(s);
  if (!m) return false;
  const len = ENCODED_LENGTH[m[1]!];
  return len !== undefined && m[2]!.length === len;
}

export function parseDigest(s: string, where = 'digest'): Digest {
  if (!isDigest(s)) {
    throw new AirlockError('DIGEST', `${where}: "${s.slice(0, 140)}" is not a sha256 or sha512 digest`);
  }
  return s;
}

export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.slice(0, d.indexOf(':')) as 'sha256' | 'sha512';
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function digestOf(data: Uint8Array, algorithm: 'sha256' | 'sha512' = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

export interface Expectation {
  digest: Digest;
  size: number;
  /** what is being read, for the error message: "blob sha256:… of quay.io/x/y" */
  what?: string;
  side?: Side;
}

/** Throws unless `data` has exactly the expected size and digest. */
export function verifyBytes(data: Uint8Array, expected: Expectation): void {
  const what = expected.what ?? expected.digest;
  if (data.byteLength !== expected.size) {
    throw new AirlockError(
      'SIZE_MISMATCH',
      `${what}: got ${data.byteLength} bytes, expected ${expected.size}`,
      sideOpt(expected.side),
    );
  }
  const actual = digestOf(data, digestAlgorithm(expected.digest));
  if (actual !== expected.digest) {
    throw new AirlockError(
      'DIGEST_MISMATCH',
      `${what}: content hashes to ${actual}, not ${expected.digest}`,
      sideOpt(expected.side),
    );
  }
}

function sideOpt(side: Side | undefined): { side?: Side } {
  return side === undefined ? {} : { side };
}

/**
 * A pass-through stream that fails (instead of ending) when the bytes that went
 * through it are not exactly `size` bytes hashing to `digest`. Consumers must
 * treat the content as untrusted until the stream has finished cleanly.
 */
export class VerifyingStream extends Transform {
  readonly #expected: Expectation;
  readonly #hash: Hash;
  #seen = 0;

  constructor(expected: Expectation) {
    super();
    this.#expected = expected;
    this.#hash = createHash(digestAlgorithm(expected.digest));
  }

  get bytesSeen(): number {
    return this.#seen;
  }

  /** True when this stream checks exactly `digest` and `size`, so a consumer need not hash the same bytes again. */
  checks(digest: string, size: number): boolean {
    return this.#expected.digest === digest && this.#expected.size === size;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#expected.size) {
      cb(
        new AirlockError(
          'SIZE_MISMATCH',
          `${this.#expected.what ?? this.#expected.digest}: more than the expected ${this.#expected.size} bytes`,
          sideOpt(this.#expected.side),
        ),
      );
      return;
    }
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const what = this.#expected.what ?? this.#expected.digest;
    if (this.#seen !== this.#expected.size) {
      cb(
        new AirlockError(
          'SIZE_MISMATCH',
          `${what}: got ${this.#seen} bytes, expected ${this.#expected.size}`,
          sideOpt(this.#expected.side),
        ),
      );
      return;
    }
    const actual = `${digestAlgorithm(this.#expected.digest)}:${this.#hash.digest('hex')}`;
    if (actual !== this.#expected.digest) {
      cb(
        new AirlockError(
          'DIGEST_MISMATCH',
          `${what}: content hashes to ${actual}, not ${this.#expected.digest}`,
          sideOpt(this.#expected.side),
        ),
      );
      return;
    }
    cb();
  }
}
