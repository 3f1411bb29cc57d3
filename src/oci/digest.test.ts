import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isAirlockError } from '../errors.js';
import { digestAlgorithm, digestHex, digestOf, isDigest, parseDigest, sha256, verifyBytes, VerifyingStream, type Digest } from './digest.js';

const hello = Buffer.from('hello');
const HELLO = 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';

async function drain(chunks: Buffer[], v: VerifyingStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    v,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

async function failure(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return isAirlockError(e) ? e.code : 'not-airlock';
  }
  return undefined;
}

describe('digest', () => {
  describe('when validating strings', () => {
    it('accepts sha256 and sha512 of the right length only', () => {
      expect(isDigest(HELLO)).toBe(true);
      expect(isDigest(`sha512:${'0'.repeat(128)}`)).toBe(true);
      expect(isDigest(`sha512:${'0'.repeat(64)}`)).toBe(false);
      expect(isDigest(`sha256:${'A'.repeat(64)}`)).toBe(false);
      expect(isDigest(`md5:${'0'.repeat(32)}`)).toBe(false);
      expect(isDigest('sha256')).toBe(false);
    });
    it('parseDigest throws DIGEST naming where', () => {
      try {
        parseDigest('sha256:zz', 'index.json manifests[0]');
        expect.unreachable();
      } catch (e) {
        expect(isAirlockError(e, 'DIGEST')).toBe(true);
        expect((e as Error).message).toContain('index.json manifests[0]');
      }
    });
    it('splits algorithm and hex', () => {
      const d = parseDigest(HELLO);
      expect(digestAlgorithm(d)).toBe('sha256');
      expect(digestHex(d)).toBe(HELLO.slice(7));
    });
  });

  describe('when hashing', () => {
    it('computes sha256 and sha512', () => {
      expect(sha256(hello)).toBe(HELLO);
      expect(digestOf(hello)).toBe(HELLO);
      expect(digestOf(hello, 'sha512')).toBe(`sha512:${createHash('sha512').update(hello).digest('hex')}`);
    });
  });

  describe('verifyBytes', () => {
    it('passes matching bytes and names the failure otherwise', () => {
      verifyBytes(hello, { digest: HELLO as Digest, size: 5 });
      expect(() => verifyBytes(hello, { digest: HELLO as Digest, size: 6 })).toThrow(/got 5 bytes, expected 6/);
      try {
        verifyBytes(Buffer.from('hellO'), { digest: HELLO as Digest, size: 5, what: 'blob x', side: 'archive' });
        expect.unreachable();
      } catch (e) {
        expect(isAirlockError(e, 'DIGEST_MISMATCH')).toBe(true);
        expect((e as { side?: string }).side).toBe('archive');
        expect((e as Error).message).toMatch(/^blob x: content hashes to sha256:/);
      }
    });
  });

  describe('VerifyingStream', () => {
    it('passes the bytes through unchanged when they match', async () => {
      const v = new VerifyingStream({ digest: HELLO as Digest, size: 5 });
      expect((await drain([Buffer.from('he'), Buffer.from('llo')], v)).equals(hello)).toBe(true);
      expect(v.bytesSeen).toBe(5);
    });
    it('fails with DIGEST_MISMATCH for other bytes of the same size', async () => {
      expect(await failure(drain([Buffer.from('hellO')], new VerifyingStream({ digest: HELLO as Digest, size: 5 })))).toBe('DIGEST_MISMATCH');
    });
    it('fails with SIZE_MISMATCH when short or long', async () => {
      expect(await failure(drain([Buffer.from('hell')], new VerifyingStream({ digest: HELLO as Digest, size: 5 })))).toBe('SIZE_MISMATCH');
      expect(await failure(drain([hello, Buffer.from('!')], new VerifyingStream({ digest: HELLO as Digest, size: 5 })))).toBe('SIZE_MISMATCH');
    });
    it('verifies sha512 digests', async () => {
      const d = digestOf(hello, 'sha512');
      expect((await drain([hello], new VerifyingStream({ digest: d, size: 5 }))).equals(hello)).toBe(true);
    });
  });
});
