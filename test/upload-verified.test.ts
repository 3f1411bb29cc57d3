import { Readable, pipeline } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../src/errors.js';
import { digestOf, VerifyingStream } from '../src/oci/digest.js';
import type { Descriptor } from '../src/oci/manifest.js';
import { RegistryClient } from '../src/registry/client.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';

/** Content as the archive reader serves it: chunks through a VerifyingStream for `desc`. */
function verified(desc: Descriptor, bytes: Buffer): VerifyingStream {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
  const v = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `archive blob ${desc.digest}`, side: 'archive' });
  pipeline(Readable.from(chunks), v, () => {});
  return v;
}

describe('Repository.push with a stream that already verifies the blob', () => {
  let reg: StartedRegistry;
  let client: RegistryClient;
  beforeAll(async () => {
    reg = await startDistribution();
    client = new RegistryClient({ plainHttp: () => true });
  });
  afterAll(async () => {
    await client?.close();
    await reg?.stop();
  });

  describe('when the bytes match', () => {
    it('stores the blob, and the registry serves the same bytes', async () => {
      const bytes = randomBytes(1024 * 1024 + 3);
      const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.length };
      const repo = client.repository(reg.host, 'up/ok');
      await repo.push(desc, verified(desc, bytes));
      const back: Buffer[] = [];
      for await (const c of await repo.fetch(desc)) back.push(c as Buffer);
      expect(digestOf(Buffer.concat(back))).toBe(desc.digest);
    });
  });

  describe('when the last byte is altered', () => {
    it('fails with the stream’s DIGEST_MISMATCH and the registry does not have the blob', async () => {
      const bytes = randomBytes(1024 * 1024 + 3);
      const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.length };
      const evil = Buffer.from(bytes);
      evil[evil.length - 1] = (evil[evil.length - 1] ?? 0) ^ 1;
      const repo = client.repository(reg.host, 'up/bad');
      const err = await repo.push(desc, verified(desc, evil)).catch((e: unknown) => e);
      expect(isAirlockError(err, 'DIGEST_MISMATCH')).toBe(true);
      expect(await repo.exists(desc)).toBe(false);
    });
  });
});
