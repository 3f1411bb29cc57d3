import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkArchive } from '../src/archive/check.js';
import type { Descriptor, ImageIndex } from '../src/oci/manifest.js';
import { parseManifest } from '../src/oci/manifest.js';
import { RegistryClient } from '../src/registry/client.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { buildFixtures, pushStore } from './support/fixtures/index.js';
import { startRegistry, type RegistryKind, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const ROOT = path.join(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'airlock.mjs');
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const DST_REPO = 'mirror/team/app';
const KILL_POINTS = 12;

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** `node bin/airlock.mjs unpack …` in its own process, so that SIGKILL hits it as it would a user's. */
function spawnUnpack(archive: string, host: string, cr: string): { child: ChildProcess; done: Promise<ChildResult> } {
  const child = spawn(process.execPath, [BIN, 'unpack', archive, '--to', `${host}/mirror`, '--plain-http', '--cluster-resources', cr], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: ENV,
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<ChildResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, done };
}

/** A few at a time: each run has its own registry and child process. */
async function pool<T, R>(items: readonly T[], width: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Killing `airlock unpack` with SIGKILL after the destination has seen N requests, for N spread
 * over a whole run, and running it again must leave exactly what an uninterrupted run leaves:
 * the same repositories, tags → digests, manifest bytes, and every referrer listed once (in the
 * fallback tag index on Distribution 2.8, through the referrers API on serve).
 */
describe('unpack killed with SIGKILL and run again', () => {
  let src: TestRegistry;
  let dir: string;
  let archive: string;
  let client: RegistryClient;
  let subjects: Descriptor[];

  beforeAll(async () => {
    if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
    }
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-kill-resume-'));
    src = await startRegistry('serve');
    client = new RegistryClient({ plainHttp: () => true });
    const fx = await buildFixtures({ seed: 'kill-resume', registry: src.host, repository: 'team/app' });
    await pushStore(fx.store, client.repository(src.host, 'team/app'));
    const cfg = path.join(dir, 'set.yaml');
    await writeFile(cfg, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'registries: { "*": { plainHTTP: true } }', 'trust: { redhat: false }', 'attachments: all', ''].join('\n'));
    archive = path.join(dir, 'set.tar');
    const r = await runCli(['pack', '--config', cfg, `${src.host}/team/app:multi`, `${src.host}/team/app:single`, `${src.host}/team/app:unsigned`, '-o', archive], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const checked = await checkArchive(archive);
    try {
      const seen = new Set<string>();
      subjects = [];
      for (const e of checked.inventory.referrers) {
        if (seen.has(e.subject)) continue;
        seen.add(e.subject);
        subjects.push(checked.manifests.get(e.subject)!.desc);
      }
    } finally {
      await checked.reader.close();
    }
    expect(subjects.length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await src?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** What the destination holds, in a form two registries can be compared by. */
  async function registryState(host: string, api: boolean): Promise<Record<string, unknown>> {
    const repos: string[] = [];
    for await (const r of client.catalog(host)) repos.push(r);
    const repo = client.repository(host, DST_REPO);
    const tagList: string[] = [];
    for await (const t of repo.tags()) tagList.push(t);
    const tags: Record<string, string> = {};
    const fallback: Record<string, string[]> = {};
    for (const t of tagList.sort()) {
      const { desc, bytes } = await repo.fetchManifest(t);
      // the bytes the registry serves hash to the digest it names: nothing was re-serialized
      tags[t] = `${desc.digest} ${sha(bytes) === desc.digest.slice(7) ? 'bytes ok' : 'BYTES DIFFER'}`;
      if (/^sha256-[0-9a-f]{64}$/.test(t)) fallback[t] = (parseManifest(bytes) as ImageIndex).manifests.map((m) => m.digest);
    }
    const listed: Record<string, string[]> = {};
    if (api) {
      for (const s of subjects) listed[s.digest] = ((await repo.referrersFromApi(s)) ?? []).map((d) => d.digest).sort();
    }
    return { repos: repos.sort(), tags, fallback, listed };
  }

  function listedOnce(state: Record<string, unknown>): string[] {
    const dupes: string[] = [];
    for (const lists of [state.fallback, state.listed] as Record<string, string[]>[]) {
      for (const [k, l] of Object.entries(lists)) if (new Set(l).size !== l.length) dupes.push(k);
    }
    return dupes;
  }

  for (const kind of ['distribution', 'serve'] as RegistryKind[]) {
    describe(`when the destination is ${kind === 'distribution' ? 'Distribution 2.8 (fallback tag index)' : 'airlock serve (referrers API)'}`, () => {
      it(`ends, after a kill at each of ${KILL_POINTS} points and a second run, in the state of an uninterrupted run`, async () => {
        const api = kind === 'serve';
        // The reference: one uninterrupted run into a fresh registry, counting its requests.
        const ref = await startRegistry(kind);
        const counter = await startFaultProxy(ref.host, () => undefined);
        let reference: Record<string, unknown>;
        let total: number;
        try {
          const { done } = spawnUnpack(archive, counter.host, path.join(dir, `cr-ref-${kind}`));
          const r = await done;
          expect(r.code, r.stderr).toBe(0);
          total = counter.seen.length;
          reference = await registryState(ref.host, api);
        } finally {
          await counter.stop();
          await ref.stop();
        }
        expect(total).toBeGreaterThan(KILL_POINTS * 2);
        expect(Object.keys(reference.tags as object).length).toBeGreaterThanOrEqual(4);
        if (api) expect(Object.values(reference.listed as object).flat().length).toBeGreaterThanOrEqual(3);
        else expect(Object.keys(reference.fallback as object).length).toBeGreaterThanOrEqual(1);
        expect(listedOnce(reference)).toEqual([]);

        const points = Array.from({ length: KILL_POINTS }, (_, i) => Math.max(1, Math.floor((total * (i + 1)) / (KILL_POINTS + 1))));
        const outcomes = await pool(points, 3, async (n) => {
          const reg = await startRegistry(kind);
          let child: ChildProcess | undefined;
          let killedAt = '';
          const proxy = await startFaultProxy(reg.host, (req, i) => {
            // the N-th request reaches the registry while its sender dies
            if (i + 1 === n) {
              killedAt = `${req.method} ${(req.url ?? '').replace(/[0-9a-f]{64}/g, (h) => h.slice(0, 8)).replace(/\?.*/, '')}`;
              child?.kill('SIGKILL');
            }
            return undefined;
          });
          try {
            const first = spawnUnpack(archive, proxy.host, path.join(dir, `cr-${kind}-${n}-a`));
            child = first.child;
            const killed = await first.done;
            const again = await spawnUnpack(archive, reg.host, path.join(dir, `cr-${kind}-${n}-b`)).done;
            const state = await registryState(reg.host, api);
            const same = JSON.stringify(state) === JSON.stringify(reference);
            const dupes = listedOnce(state);
            return {
              n,
              line: `kill after ${n}: ${killed.signal ?? `exit ${killed.code}`}; again: exit ${again.code}; ${same ? 'same state' : `DIFFERENT ${JSON.stringify(state)}`}${dupes.length ? ` duplicates in ${dupes}` : ''}`,
              killedAt,
              stderr: again.stderr,
            };
          } finally {
            await proxy.stop();
            await reg.stop();
          }
        });
        // every point really was a kill in the middle of a run, then a clean finish
        expect(outcomes.map((o) => o.line), outcomes.map((o) => `${o.n} ${o.killedAt}: ${o.stderr}`).join('\n')).toEqual(
          points.map((n) => `kill after ${n}: SIGKILL; again: exit 0; same state`),
        );
        // the points fall on different kinds of request (blob uploads, manifests, tags)
        expect(new Set(outcomes.map((o) => o.killedAt.split(' ')[0])).size).toBeGreaterThanOrEqual(2);
      }, 600_000);
    });
  }
});
