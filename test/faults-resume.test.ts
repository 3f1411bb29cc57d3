import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll } from '../src/content/read.js';
import { digestOf } from '../src/oci/digest.js';
import type { Descriptor } from '../src/oci/manifest.js';
import { RegistryClient } from '../src/registry/client.js';
import { startFaultProxy, type FaultAction, type FaultProxy } from './support/fault-proxy.js';
import { startRegistry, type TestRegistry } from './support/registries.js';

const REPO = 'resume/blob';

/**
 * Repository.fetch against Distribution through the fault proxy: how a broken
 * blob download is resumed (or refused) at the client level, byte for byte.
 */
describe('Repository.fetch resumes broken blob downloads', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let direct: RegistryClient;
  let client: RegistryClient;
  let rule: (req: IncomingMessage) => FaultAction = () => undefined;
  const bytes = randomBytes(256 * 1024);
  const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.length };

  beforeAll(async () => {
    reg = await startRegistry('distribution');
    proxy = await startFaultProxy(reg.host, (req) => rule(req));
    direct = new RegistryClient({ plainHttp: () => true });
    client = new RegistryClient({ plainHttp: () => true, retries: 2, backoffMs: 5, timeoutMs: 1000 });
    await direct.repository(reg.host, REPO).push(desc, Readable.from([bytes]));
  }, 60_000);

  afterAll(async () => {
    await Promise.all([direct?.close(), client?.close()]);
    await proxy?.stop();
    await reg?.stop();
  });

  /** fault the n-th GET of the blob (1-based) with the given actions; later ones pass */
  function faults(...actions: FaultAction[]): void {
    let n = 0;
    rule = (req) => (req.method === 'GET' && req.url?.endsWith(`/blobs/${desc.digest}`) ? actions[n++] : undefined);
  }

  const ranges = (from: number): (string | undefined)[] =>
    proxy.requests.slice(from).filter((q) => q.url.endsWith(`/blobs/${desc.digest}`)).map((q) => q.range);

  it('joins the parts of a body cut three times into the exact bytes', async () => {
    const from = proxy.requests.length;
    faults({ reset: 'mid-body', after: 1000 }, { reset: 'mid-body', after: 50_000 }, { truncate: true, after: 7 });
    const got = await readAll(await client.repository(proxy.host, REPO).fetch(desc), 1 << 20);
    expect(got.equals(bytes)).toBe(true);
    expect(ranges(from)).toEqual([undefined, 'bytes=1000-', 'bytes=51000-', 'bytes=51007-']);
  });

  it('drops what it already has when the server ignores Range and answers 200', async () => {
    const from = proxy.requests.length;
    faults({ reset: 'mid-body', after: 4096 }, { dropRange: true });
    const got = await readAll(await client.repository(proxy.host, REPO).fetch(desc), 1 << 20);
    expect(got.equals(bytes)).toBe(true);
    expect(ranges(from)).toEqual([undefined, 'bytes=4096-']);
  });

  it('resumes a body that went silent, after the body timeout', async () => {
    const from = proxy.requests.length;
    faults({ stall: 'mid-body', after: 10_000 });
    const got = await readAll(await client.repository(proxy.host, REPO).fetch(desc), 1 << 20);
    expect(got.equals(bytes)).toBe(true);
    expect(ranges(from)).toEqual([undefined, 'bytes=10000-']);
  });

  it('fails on wrong bytes in the resumed part, naming the digest, without trying again', async () => {
    const from = proxy.requests.length;
    faults({ reset: 'mid-body', after: 2000 }, { corrupt: true, at: 5 });
    const err = await readAll(await client.repository(proxy.host, REPO).fetch(desc), 1 << 20).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect((err as Error).message).toContain(desc.digest);
    expect(ranges(from)).toEqual([undefined, 'bytes=2000-']);
  });

  it('gives up after the retry budget when no attempt brings a new byte', async () => {
    const from = proxy.requests.length;
    rule = (req) => (req.method === 'GET' && req.url?.endsWith(`/blobs/${desc.digest}`) ? { reset: 'mid-body', after: req.headers.range ? 0 : 100 } : undefined);
    const err = await readAll(await client.repository(proxy.host, REPO).fetch(desc), 1 << 20).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NETWORK' });
    expect((err as Error).message).toMatch(/broke off at byte 100 of 262144/);
    // the first GET, then retries+1 attempts that brought nothing
    expect(ranges(from)).toEqual([undefined, 'bytes=100-', 'bytes=100-', 'bytes=100-']);
  });

  it('stops at once when the caller aborts during a resume', async () => {
    faults({ stall: 'mid-body', after: 3000 });
    const ac = new AbortController();
    const stream = await client.repository(proxy.host, REPO).fetch(desc, { signal: ac.signal });
    let seen = 0;
    stream.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen >= 3000) ac.abort();
    });
    const err = await new Promise<unknown>((resolve) => stream.on('error', resolve));
    expect(err).toMatchObject({ code: 'ABORTED' });
  });
});
