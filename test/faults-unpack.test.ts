import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkArchive } from '../src/archive/check.js';
import { unpack as unpackArchive } from '../src/commands/unpack.js';
import { readAll } from '../src/content/read.js';
import { digestOf } from '../src/oci/digest.js';
import { parseManifest, type Descriptor, type ImageIndex } from '../src/oci/manifest.js';
import { fallbackTag } from '../src/oci/referrers.js';
import { RegistryClient } from '../src/registry/client.js';
import { startFaultProxy, type FaultAction, type FaultProxy } from './support/fault-proxy.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const SRC_REPO = 'team/app';
const DST_REPO = 'mirror/team/app';

/** The upload-completing PUT of a monolithic upload: `PUT /v2/<name>/blobs/uploads/<id>?digest=…` */
function uploadDigest(req: IncomingMessage): string | undefined {
  if (req.method !== 'PUT') return undefined;
  const u = new URL(req.url ?? '/', 'http://x');
  return u.pathname.includes('/blobs/uploads/') ? (u.searchParams.get('digest') ?? undefined) : undefined;
}

/** What a registry holds for the repository: tags → digests, and each subject's fallback index entries. */
async function registryState(client: RegistryClient, host: string, fx: FixtureSet, name = DST_REPO): Promise<unknown> {
  const repo = client.repository(host, name);
  const tags: Record<string, string> = {};
  const fallback: Record<string, string[]> = {};
  const all: string[] = [];
  for await (const t of repo.tags()) all.push(t);
  for (const t of all.sort()) {
    const { desc, bytes } = await repo.fetchManifest(t);
    tags[t] = desc.digest;
    if (t.startsWith('sha256-') && !t.includes('.')) {
      fallback[t] = (parseManifest(bytes) as ImageIndex).manifests.map((m) => m.digest);
    }
  }
  // every blob of the fixtures is there, byte for byte
  const blobs: Record<string, boolean> = {};
  for (const d of fx.store.descriptors()) {
    if (d.mediaType.includes('manifest') || d.mediaType.includes('index')) continue;
    blobs[d.digest] = await repo.exists(d);
  }
  return { tags, fallback, blobs };
}

describe('unpack through a faulty link to the destination (Distribution behind a fault-injecting proxy)', () => {
  let src: TestRegistry;
  let clean: TestRegistry;
  let dst: TestRegistry;
  let proxy: FaultProxy;
  let dir: string;
  let fx: FixtureSet;
  let archive: string;
  let client: RegistryClient;
  let rule: (req: IncomingMessage, n: number) => FaultAction = () => undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-faults-unpack-'));
    [src, clean, dst] = await Promise.all([startRegistry('serve'), startRegistry('distribution'), startRegistry('distribution')]);
    proxy = await startFaultProxy(dst.host, (req, n) => rule(req, n));
    client = new RegistryClient({ plainHttp: () => true });
    fx = await buildFixtures({ seed: 'faults-unpack', registry: src.host, repository: SRC_REPO });
    await pushStore(fx.store, client.repository(src.host, SRC_REPO));
    const cfg = path.join(dir, 'set.yaml');
    await writeFile(cfg, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'registries: { "*": { plainHTTP: true } }', 'trust: { redhat: false }', 'attachments: all', ''].join('\n'));
    archive = path.join(dir, 'set.tar');
    const r = await runCli(['pack', '--config', cfg, `${src.host}/${SRC_REPO}:multi`, `${src.host}/${SRC_REPO}:single`, '-o', archive], { env: ENV });
    expect(r.stderr).not.toMatch(/airlock: /);
    expect(r.code).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await proxy?.stop();
    await Promise.all([src?.stop(), clean?.stop(), dst?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const unpack = (host: string, extra: string[] = []) =>
    runCli(['unpack', archive, '--to', `${host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, `cr-${host.replace(':', '-')}`), '--retries', '3', ...extra], { env: ENV });

  describe('when the faults are transient', () => {
    it('ends in the same registry state as a fault-free unpack', async () => {
      const faults: FaultAction[] = [
        { reset: 'mid-request' },
        { status: 503 },
        { status: 429, headers: { 'retry-after': '1' } },
        { reset: 'before' },
        { reset: 'answer-lost' },
      ];
      const faulted = new Map<string, FaultAction>();
      const seenKeys = new Set<string>();
      let manifestFaults = 0;
      const start = proxy.requests.length;
      rule = (req) => {
        const digest = uploadDigest(req);
        if (digest !== undefined) {
          // the first upload of each of the first blobs fails, each in its own way
          if (faulted.has(digest) || faulted.size >= faults.length) return undefined;
          const f = faults[faulted.size]!;
          faulted.set(digest, f);
          return f;
        }
        const key = `${req.method} ${req.url}`;
        if (seenKeys.has(key)) return undefined;
        seenKeys.add(key);
        // the first PUT of some manifests and tags, and some HEADs, answer 5xx once
        if ((req.method === 'PUT' || req.method === 'HEAD') && /\/manifests\//.test(req.url ?? '') && manifestFaults < 6 && seenKeys.size % 3 === 0) {
          return { status: [500, 502, 503, 504][manifestFaults++ % 4]! };
        }
        return undefined;
      };
      // the fault-free run into a registry of its own, at the same time
      const [c, r] = await Promise.all([unpack(clean.host), unpack(proxy.host)]);
      rule = () => undefined;
      expect(c.stderr).not.toMatch(/airlock: /);
      expect(c.code).toBe(0);
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      expect(faulted.size).toBe(faults.length);
      expect(manifestFaults).toBe(6);

      const want = await registryState(client, clean.host, fx);
      const got = await registryState(client, dst.host, fx);
      expect(got).toEqual(want);
      const { fallback } = got as { fallback: Record<string, string[]> };
      for (const list of Object.values(fallback)) expect(new Set(list).size).toBe(list.length); // each referrer listed once
      expect(Object.keys(fallback).length).toBeGreaterThan(0);

      // every faulted blob got a fresh upload session of its own after the failure
      const seen = proxy.requests.slice(start);
      for (const [digest, f] of faulted) {
        const puts = seen.filter((q) => q.method === 'PUT' && q.url.includes(`digest=${encodeURIComponent(digest)}`));
        if (f && 'reset' in f && f.reset === 'answer-lost') {
          // the registry had completed it: a HEAD finds the blob and nothing is sent again
          expect(puts.length, digest).toBe(1);
          continue;
        }
        expect(puts.length, digest).toBe(2);
        const [a, b] = puts.map((q) => new URL(q.url, 'http://x').pathname);
        expect(a).not.toBe(b);
      }
    }, 60_000);
  });

  describe('when the destination keeps failing an upload', () => {
    it('fails with one line naming the blob, and does not tag anything', async () => {
      const target = await startRegistry('distribution');
      const bad = await startFaultProxy(target.host, (req) => (uploadDigest(req) !== undefined ? { status: 503 } : undefined));
      try {
        const r = await runCli(
          ['unpack', archive, '--to', `${bad.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr-bad'), '--retries', '1'],
          { env: ENV },
        );
        expect(r.code).toBe(1);
        const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('airlock: '));
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`${bad.host}/${DST_REPO}: pushing blob sha256:[0-9a-f]{64}: .*HTTP 503`));
        // nothing was tagged: the repository does not even exist (no manifest got in)
        await expect(client.repository(target.host, DST_REPO).tags()[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'NOT_FOUND' });
      } finally {
        await bad.stop();
        await target.stop();
      }
    }, 30_000);
  });

  describe('when a chunked upload breaks in the middle', () => {
    it('asks the registry how far it got and resumes in the same session', async () => {
      const target = await startRegistry('distribution');
      let patches = 0;
      const flaky = await startFaultProxy(target.host, (req) => {
        if (req.method !== 'PATCH') return undefined;
        patches++;
        // lost on the way: the registry never saw these two, and says so when asked
        if (patches === 2) return { reset: 'before' };
        if (patches === 4) return { status: 503 };
        return undefined;
      });
      const c = new RegistryClient({ plainHttp: () => true, chunkThreshold: 1, chunkSize: 1024, retries: 3, backoffMs: 10 });
      try {
        const bytes = randomBytes(5000);
        const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.length };
        const { Readable } = await import('node:stream');
        await c.repository(flaky.host, 'chunks/blob').push(desc, Readable.from([bytes]));
        const back = await readAll(await client.repository(target.host, 'chunks/blob').fetch(desc), 1 << 20);
        expect(back.equals(bytes)).toBe(true);
        const reqs = flaky.requests;
        expect(reqs.filter((q) => q.method === 'POST')).toHaveLength(1); // no fresh session: resumed
        expect(reqs.filter((q) => q.method === 'GET' && q.url.includes('/blobs/uploads/')).length).toBeGreaterThanOrEqual(1);
        expect(patches).toBeGreaterThanOrEqual(6);
      } finally {
        await c.close();
        await flaky.stop();
        await target.stop();
      }
    }, 30_000);

    it('starts a fresh session when the registry kept part of a chunk (Distribution then drops the session)', async () => {
      const target = await startRegistry('distribution');
      let patches = 0;
      const flaky = await startFaultProxy(target.host, (req) => (req.method === 'PATCH' && ++patches === 2 ? { reset: 'mid-request', after: 300 } : undefined));
      const c = new RegistryClient({ plainHttp: () => true, chunkThreshold: 1, chunkSize: 1024, retries: 3, backoffMs: 10 });
      try {
        const bytes = randomBytes(4000);
        const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.length };
        const { Readable } = await import('node:stream');
        await c.repository(flaky.host, 'chunks/partial').push(desc, Readable.from([bytes]), { reopen: async () => Readable.from([bytes]) });
        const back = await readAll(await client.repository(target.host, 'chunks/partial').fetch(desc), 1 << 20);
        expect(back.equals(bytes)).toBe(true);
        expect(flaky.requests.filter((q) => q.method === 'POST')).toHaveLength(2);
      } finally {
        await c.close();
        await flaky.stop();
        await target.stop();
      }
    }, 30_000);

    it('starts a fresh session when the old one is gone', async () => {
      const target = await startRegistry('distribution');
      let patches = 0;
      let cancelled = false;
      const flaky = await startFaultProxy(target.host, (req) => {
        if (req.method === 'PATCH' && ++patches === 2) return { reset: 'mid-request', after: 0 };
        // the upload status of the broken session answers 404: the session is lost
        if (req.method === 'GET' && req.url?.includes('/blobs/uploads/') && !cancelled) {
          cancelled = true;
          return { status: 404, body: '{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}' };
        }
        return undefined;
      });
      const c = new RegistryClient({ plainHttp: () => true, chunkThreshold: 1, chunkSize: 1024, retries: 3, backoffMs: 10 });
      try {
        const bytes = randomBytes(3000);
        const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes), size: bytes.length };
        const { Readable } = await import('node:stream');
        await c.repository(flaky.host, 'chunks/lost').push(desc, Readable.from([bytes]), { reopen: async () => Readable.from([bytes]) });
        const back = await readAll(await client.repository(target.host, 'chunks/lost').fetch(desc), 1 << 20);
        expect(back.equals(bytes)).toBe(true);
        expect(flaky.requests.filter((q) => q.method === 'POST')).toHaveLength(2);
        // the abandoned session was cancelled
        expect(flaky.requests.some((q) => q.method === 'DELETE' && q.url.includes('/blobs/uploads/'))).toBe(true);
      } finally {
        await c.close();
        await flaky.stop();
        await target.stop();
      }
    }, 30_000);
  });

  describe('when unpack uploads every blob in chunks through a flaky link', () => {
    it('resumes or restarts each broken upload and ends in the state of a fault-free run', async () => {
      const c = await unpack(clean.host);
      expect(c.code).toBe(0);
      let patches = 0;
      const kinds: FaultAction[] = [{ reset: 'before' }, { status: 503 }, { reset: 'mid-request', after: 100 }, { status: 429, headers: { 'retry-after': '0' } }];
      rule = (req) => (req.method === 'PATCH' && ++patches % 5 === 2 ? kinds[Math.floor(patches / 5) % kinds.length] : undefined);
      const start = proxy.requests.length;
      const chunky = new RegistryClient({ plainHttp: () => true, chunkThreshold: 1, chunkSize: 512, retries: 3, backoffMs: 10 });
      const checked = await checkArchive(archive);
      try {
        await unpackArchive({
          archive: checked,
          mapping: { registry: proxy.host, prefix: 'chunked', keepHost: false },
          open: (registry, repository) => chunky.repository(registry, repository),
        });
      } finally {
        rule = () => undefined;
        await checked.reader.close();
        await chunky.close();
      }
      expect(patches).toBeGreaterThan(20);
      const want = await registryState(client, clean.host, fx);
      expect(await registryState(client, dst.host, fx, 'chunked/team/app')).toEqual(want);
      const seen = proxy.requests.slice(start);
      // in-session resumes asked the registry for the upload status; partial chunks cost a fresh session
      expect(seen.some((q) => q.method === 'GET' && q.url.includes('/blobs/uploads/'))).toBe(true);
      expect(seen.some((q) => q.method === 'DELETE' && q.url.includes('/blobs/uploads/'))).toBe(true);
    }, 30_000);
  });

  it('keeps the fallback tag helper honest (sanity: fixtures have referrers)', () => {
    expect(fx.referrers.length).toBeGreaterThan(0);
    expect(fallbackTag(fx.referrers[0]!.subject as never)).toMatch(/^sha256-[0-9a-f]{64}$/);
  });
});
