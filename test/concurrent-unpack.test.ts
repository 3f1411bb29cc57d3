import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkArchive } from '../src/archive/check.js';
import type { Digest } from '../src/oci/digest.js';
import type { Descriptor, ImageIndex } from '../src/oci/manifest.js';
import { parseManifest } from '../src/oci/manifest.js';
import { fallbackTag } from '../src/oci/referrers.js';
import { RegistryClient } from '../src/registry/client.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { buildFixtures, pushStore } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const ROOT = path.join(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'airlock.mjs');
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const DST_REPO = 'mirror/team/app';
const ROUNDS = 5;

/** `node bin/airlock.mjs unpack …` in a process of its own: two of them race as two users' would. */
function unpackInChild(archive: string, host: string, cr: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'unpack', archive, '--to', `${host}/mirror`, '--plain-http', '--cluster-resources', cr], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: ENV,
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

/** The OCI 1.1 referrers (not cosign tags) an archive carries for `subject`. */
async function referrersIn(archive: string, subject: Digest): Promise<string[]> {
  const c = await checkArchive(archive);
  try {
    return c.inventory.referrers.filter((r) => r.subject === subject && r.tag === undefined).map((r) => r.digest);
  } finally {
    await c.reader.close();
  }
}

/**
 * Two unpacks at once into one Distribution 2.8 (no referrers API, so both merge into the
 * same `sha256-<hex>` fallback tag index, distribution-spec "Referrers Tag Schema"), each
 * carrying the same image with different referrers: both must end up listed, each once.
 */
describe('two unpacks at once into the same registry in fallback mode', () => {
  let src: TestRegistry;
  let dir: string;
  let client: RegistryClient;
  let archiveA: string;
  let archiveB: string;
  let subject: Descriptor;

  beforeAll(async () => {
    if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
    }
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-concurrent-'));
    src = await startRegistry('serve');
    client = new RegistryClient({ plainHttp: () => true });
    const fx = await buildFixtures({ seed: 'concurrent', registry: src.host, repository: 'team/app' });
    await pushStore(fx.store, client.repository(src.host, 'team/app'));
    const ref = `${src.host}/team/app:multi`;
    const cfg = path.join(dir, 'set.yaml');
    await writeFile(cfg, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'registries: { "*": { plainHTTP: true } }', 'trust: { redhat: false }', ''].join('\n'));
    archiveA = path.join(dir, 'sboms.tar');
    archiveB = path.join(dir, 'attestations.tar');
    // the same image; A carries the SBOM referrers, B the in-toto one (both the signature bundle)
    const [a, b] = await Promise.all([
      runCli(['pack', '--config', cfg, ref, '--attachments', 'sbom', '-o', archiveA], { env: ENV }),
      runCli(['pack', '--config', cfg, ref, '--attachments', 'attestations', '-o', archiveB], { env: ENV }),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const { desc } = await client.repository(src.host, 'team/app').fetchManifest('multi');
    subject = desc;
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await src?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`both referrers end in the fallback index, each once (${ROUNDS} rounds, fresh registries)`, async () => {
    const fromA = await referrersIn(archiveA, subject.digest);
    const fromB = await referrersIn(archiveB, subject.digest);
    const onlyA = fromA.filter((d) => !fromB.includes(d));
    const onlyB = fromB.filter((d) => !fromA.includes(d));
    // the archives really differ, and share one (the signature bundle), which must not be listed twice
    expect(onlyA.length).toBeGreaterThanOrEqual(1);
    expect(onlyB.length).toBeGreaterThanOrEqual(1);
    expect(fromA.filter((d) => fromB.includes(d)).length).toBeGreaterThanOrEqual(1);
    const union = [...new Set([...fromA, ...fromB])].sort();

    const rounds: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const dst = await startRegistry('distribution');
      // A pass-through proxy adds a little of a real link's latency, which widens the
      // windows in which the two writers overlap (it first showed the blob-link race
      // that pushManifest now retries).
      const link = await startFaultProxy(dst.host, () => undefined);
      try {
        const [ra, rb] = await Promise.all([
          unpackInChild(archiveA, link.host, path.join(dir, `cr-${round}-a`)),
          unpackInChild(archiveB, link.host, path.join(dir, `cr-${round}-b`)),
        ]);
        const repo = client.repository(dst.host, DST_REPO);
        const { bytes } = await repo.fetchManifest(fallbackTag(subject.digest));
        const listed = (parseManifest(bytes) as ImageIndex).manifests.map((m) => m.digest);
        const tag = await repo.fetchManifest('multi');
        rounds.push(
          `round ${round}: exits ${ra.code}/${rb.code}, multi ${tag.desc.digest === subject.digest ? 'same digest' : tag.desc.digest}, ` +
            `fallback ${JSON.stringify([...listed].sort()) === JSON.stringify(union) && new Set(listed).size === listed.length ? 'has both, each once' : JSON.stringify(listed)}` +
            (ra.code || rb.code ? ` ${ra.stderr}${rb.stderr}` : ''),
        );
      } finally {
        await link.stop();
        await dst.stop();
      }
    }
    expect(rounds).toEqual(Array.from({ length: ROUNDS }, (_, i) => `round ${i}: exits 0/0, multi same digest, fallback has both, each once`));
  }, 300_000);

  describe('when Distribution says a just-pushed blob is unknown (its link file is being rewritten by the other writer)', () => {
    it('pushes the manifest again and finishes; a blob that stays unknown still fails with one line', async () => {
      const dst = await startRegistry('distribution');
      // what Distribution 2.8 answered in the race, word for word
      const race = {
        status: 400,
        body: JSON.stringify({
          errors: [
            { code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' },
            { code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry' },
          ],
        }),
      };
      let refused = 0;
      const link = await startFaultProxy(dst.host, (req) => {
        if (req.method !== 'PUT' || !/\/manifests\//.test(req.url ?? '')) return undefined;
        if (refused < 2) {
          refused++;
          return race;
        }
        return undefined;
      });
      try {
        const ok = await runCli(['unpack', archiveA, '--to', `${link.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr-race')], { env: ENV });
        expect(ok.code, ok.stderr).toBe(0);
        expect(refused).toBe(2);
        const repo = client.repository(dst.host, DST_REPO);
        expect((await repo.fetchManifest('multi')).desc.digest).toBe(subject.digest);
        const listed = (parseManifest((await repo.fetchManifest(fallbackTag(subject.digest))).bytes) as ImageIndex).manifests.map((m) => m.digest);
        expect(listed.sort()).toEqual([...(await referrersIn(archiveA, subject.digest))].sort());

        const other = await startRegistry('distribution');
        const perUrl = new Map<string, number>();
        const link2 = await startFaultProxy(other.host, (req) => {
          if (req.method !== 'PUT' || !/\/manifests\//.test(req.url ?? '')) return undefined;
          perUrl.set(req.url ?? '', (perUrl.get(req.url ?? '') ?? 0) + 1);
          return race;
        });
        try {
          const bad = await runCli(['unpack', archiveA, '--to', `${link2.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr-race-2')], { env: ENV });
          expect(bad.code).toBe(1);
          const lines = bad.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
          expect(lines).toHaveLength(1);
          expect(lines[0]).toMatch(/pushing manifest sha256:[0-9a-f]{64}.*MANIFEST_BLOB_UNKNOWN/);
          // each manifest PUT is tried once and retried 4 times, no more (manifests go
          // several at a time, so the others may be cut short by the first failure)
          expect(Math.max(...perUrl.values())).toBe(5);
        } finally {
          await link2.stop();
          await other.stop();
        }
      } finally {
        await link.stop();
        await dst.stop();
      }
    }, 120_000);
  });
});
