import { access, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { startFaultProxy, type FaultAction, type FaultProxy } from './support/fault-proxy.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';
import { writeImageSet } from './support/image-set.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const REPO = 'faults/app';
/** small knobs so that every fault costs well under a second */
const FAST = ['--retries', '3', '--timeout', '1', '--concurrency', '4'];

/** mulberry32: a seeded generator, so a failing fault pattern can be replayed */
function seeded(seed: number): { next(): number } {
  let a = seed >>> 0;
  return {
    next(): number {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** `/v2/<repo>/blobs/<digest>` → digest */
function blobOf(req: { url?: string | undefined }): string | undefined {
  return /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
}

describe('pack through a faulty link (Distribution behind a fault-injecting proxy)', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let dir: string;
  let fx: FixtureSet;
  let rule: (req: IncomingMessage, n: number) => FaultAction = () => undefined;
  let cfg: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-faults-pack-'));
    reg = await startRegistry('distribution');
    proxy = await startFaultProxy(reg.host, (req, n) => rule(req, n));
    const client = new RegistryClient({ plainHttp: () => true });
    // The fixtures name the proxy: the archive records the reference packed from.
    fx = await buildFixtures({ seed: 'faults-pack', registry: proxy.host, repository: REPO });
    await pushStore(fx.store, client.repository(reg.host, REPO), { fallbackIndexes: true });
    await client.close();
    cfg = await writeImageSet(path.join(dir, 'set.yaml'), { images: [`${proxy.host}/${REPO}:multi`, `${proxy.host}/${REPO}:single`], attachments: 'all' });
  }, 120_000);

  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const layers = (): string[] => {
    const out = new Set<string>();
    for (const d of fx.store.descriptors()) if (d.mediaType.includes('layer') && d.size > 64) out.add(d.digest);
    return [...out].sort();
  };

  describe('when the faults are transient', () => {
    it('completes, resumes broken blobs with Range, and writes the same bytes as a fault-free run', async () => {
      rule = () => undefined;
      const clean = path.join(dir, 'clean.tar');
      const c = await runCli(['pack', '--config', cfg, '-o', clean, ...FAST], { env: ENV });
      expect(c.stderr).not.toMatch(/airlock: /);
      expect(c.code).toBe(0);

      const ls = layers();
      expect(ls.length).toBeGreaterThanOrEqual(4);
      const [resetBlob, truncBlob, stallBlob, errBlob] = ls as [string, string, string, string];
      const rnd = seeded(0x5eed);
      const firstSeen = new Set<string>();
      let stalledOnce = false;
      let limitedOnce = false;
      const start = proxy.requests.length;
      rule = (req) => {
        const key = `${req.method} ${req.url} ${req.headers.range ?? ''}`;
        const first = !firstSeen.has(key);
        firstSeen.add(key);
        if (!first) return undefined; // every fault is transient: the next attempt passes
        const blob = blobOf(req);
        if (req.method === 'GET' && blob !== undefined && req.headers.range === undefined) {
          if (blob === resetBlob) return { reset: 'mid-body' };
          if (blob === truncBlob) return { truncate: true };
          if (blob === stallBlob) return { stall: 'mid-body' };
          if (blob === errBlob) return { status: 503 };
        }
        if (req.method === 'GET' && /\/manifests\//.test(req.url ?? '')) {
          if (!limitedOnce) {
            limitedOnce = true;
            return { status: 429, headers: { 'retry-after': '1' } };
          }
          if (!stalledOnce) {
            stalledOnce = true;
            return { stall: true };
          }
        }
        // 5xx at random (seeded, so a failure can be replayed), and a reset before any answer
        const x = rnd.next();
        if (x < 0.15) return { status: [500, 502, 503, 504][Math.floor(x * 100) % 4]! };
        if (x < 0.2) return { reset: 'before' };
        return undefined;
      };
      const faulty = path.join(dir, 'faulty.tar');
      const r = await runCli(['pack', '--config', cfg, '-o', faulty, ...FAST], { env: ENV });
      rule = () => undefined;
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      const [a, b] = await Promise.all([readFile(clean), readFile(faulty)]);
      expect(b.equals(a)).toBe(true);
      expect(await readFile(`${faulty}.sha256`, 'utf8')).toBe((await readFile(`${clean}.sha256`, 'utf8')).replace('clean.tar', 'faulty.tar'));

      const seen = proxy.requests.slice(start);
      expect(limitedOnce && stalledOnce).toBe(true);
      for (const blob of [resetBlob, truncBlob, stallBlob]) {
        const gets = seen.filter((q) => q.method === 'GET' && q.url.endsWith(`/blobs/${blob}`));
        const size = fx.store.descriptors().find((d) => d.digest === blob)!.size;
        // one download from the start, then the rest asked for from where it broke off
        expect(gets.filter((q) => q.range === undefined), `${blob}: ${gets.map((q) => q.range ?? 'whole').join(', ')}`).toHaveLength(1);
        expect(gets.map((q) => q.range)).toContain(`bytes=${Math.floor(size / 2)}-`);
      }
      // a 503 before the body is simply retried from the start: no Range there
      const errGets = seen.filter((q) => q.method === 'GET' && q.url.endsWith(`/blobs/${errBlob}`));
      expect(errGets.map((q) => q.range ?? 'whole')).toEqual(['whole', 'whole']);
    }, 60_000);
  });

  describe('when the faults persist', () => {
    async function failingPack(name: string, r: (req: IncomingMessage) => FaultAction, extra: string[] = []) {
      const sub = path.join(dir, name);
      await mkdir(sub);
      const out = path.join(sub, 'out.tar');
      rule = r;
      try {
        const res = await runCli(['pack', '--config', cfg, '-o', out, ...FAST, '--retries', '2', ...extra], { env: ENV });
        const lines = res.stderr.trim().split('\n').filter((l) => l.startsWith('airlock: '));
        return { res, lines, entries: await readdir(sub), out };
      } finally {
        rule = () => undefined;
      }
    }

    it('fails on a blob the registry keeps answering 503 for, with one line naming image and blob, leaving nothing', async () => {
      const blob = layers()[0]!;
      const { res, lines, entries, out } = await failingPack('p503', (req) => (blobOf(req) === blob ? { status: 503 } : undefined));
      expect(res.code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^airlock: ${proxy.host}/${REPO}:(multi|single): `));
      expect(lines[0]).toContain(blob);
      expect(lines[0]).toMatch(/HTTP 503/);
      expect(entries).toEqual([]);
      await expect(access(out)).rejects.toThrow();
    }, 30_000);

    it('fails on a blob whose body always breaks off before a byte arrives, after bounded resumes', async () => {
      const blob = layers()[1]!;
      const { res, lines, entries } = await failingPack('preset', (req) => (blobOf(req) === blob && req.method === 'GET' ? { reset: 'mid-body', after: 0 } : undefined));
      expect(res.code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^airlock: ${proxy.host}/${REPO}:(multi|single): `));
      expect(lines[0]).toContain(blob);
      expect(entries).toEqual([]);
      const gets = proxy.requests.filter((q) => q.method === 'GET' && q.url.endsWith(`/blobs/${blob}`));
      expect(gets.length).toBeLessThan(20);
    }, 30_000);

    it('fails on wrong bytes under a digest without retrying them into the archive, leaving nothing', async () => {
      const blob = layers()[2]!;
      const { res, lines, entries } = await failingPack('pcorrupt', (req) => (blobOf(req) === blob && req.method === 'GET' ? { corrupt: true, at: 3 } : undefined));
      expect(res.code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^airlock: ${proxy.host}/${REPO}:(multi|single): `));
      expect(lines[0]).toContain(blob);
      expect(lines[0]).toMatch(/hashes to sha256:[0-9a-f]{64}, not/);
      expect(entries).toEqual([]);
    }, 30_000);

    it('fails on a stalled manifest after the timeout and retries, with one line, leaving nothing', async () => {
      const { res, lines, entries } = await failingPack('pstall', (req) => (/\/manifests\/single$/.test(req.url ?? '') ? { stall: true } : undefined), [
        '--retries',
        '1',
      ]);
      expect(res.code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${proxy.host}/${REPO}:single`);
      expect(lines[0]).toMatch(/TIMEOUT/);
      expect(entries).toEqual([]);
    }, 30_000);
  });
});
