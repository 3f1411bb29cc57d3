import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { buildFixtures, pushStore } from './support/fixtures/index.js';
import { writeImageSet } from './support/image-set.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

/** Two source registries holding the same repository path: the mapping must keep them apart or refuse. */
describe('unpack planning', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  let dst: TestRegistry;
  let dir: string;
  let client: RegistryClient;
  let archive: string;

  async function catalog(): Promise<string[]> {
    const out: string[] = [];
    for await (const r of client.catalog(dst.host)) out.push(r);
    return out.sort();
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-plan-'));
    [a, b, dst] = await Promise.all([startRegistry('distribution'), startRegistry('serve'), startRegistry('serve')]);
    client = new RegistryClient({ plainHttp: () => true });
    for (const [r, seed] of [[a, 'plan-a'], [b, 'plan-b']] as const) {
      const fx = await buildFixtures({ seed, registry: r.host, repository: 'team/app', include: { single: true, cosignSignatures: true } });
      await pushStore(fx.store, client.repository(r.host, 'team/app'), { fallbackIndexes: !r.referrersApi });
    }
    archive = path.join(dir, 'two.tar');
    const cfg = await writeImageSet(path.join(dir, 'set.yaml'), {});
    const r = await runCli(['pack', '--config', cfg, `${a.host}/team/app:single`, `${b.host}/team/app:single`, '-o', archive], { env: ENV });
    expect(r.code).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([a?.stop(), b?.stop(), dst?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('when two sources map to one destination repository', () => {
    it('refuses before any push, naming both and the way out', async () => {
      const r = await runCli(['unpack', archive, '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr0')]);
      expect(r.code).toBe(2);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${a.host}/team/app`);
      expect(lines[0]).toContain(`${b.host}/team/app`);
      expect(lines[0]).toContain('--keep-host');
      expect(await catalog()).toEqual([]);
    });
  });

  describe('when --dry-run is given', () => {
    it('prints the plan with the referrers-API state and writes nothing', async () => {
      const r = await runCli(['unpack', archive, '--to', `${dst.host}/mirror`, '--keep-host', '--plain-http', '--dry-run', '--json', '--cluster-resources', path.join(dir, 'cr1')]);
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      const plan = JSON.parse(r.stdout) as { dryRun: boolean; repositories: { source: string; destination: string; referrersApi: string; cosignTags: string[] }[] };
      expect(plan.dryRun).toBe(true);
      const hostPath = (h: string) => h.replace(':', '-');
      expect(plan.repositories.map((p) => [p.source, p.destination]).sort()).toEqual(
        [
          [`${a.host}/team/app`, `${dst.host}/mirror/${hostPath(a.host)}/team/app`],
          [`${b.host}/team/app`, `${dst.host}/mirror/${hostPath(b.host)}/team/app`],
        ].sort(),
      );
      expect(plan.repositories.every((p) => p.referrersApi === 'yes')).toBe(true);
      expect(plan.repositories.every((p) => p.cosignTags.length === 1)).toBe(true);
      expect(await catalog()).toEqual([]);
      await expect(readdir(path.join(dir, 'cr1'))).rejects.toThrow();
    });
  });

  describe('when --keep-host keeps the sources apart', () => {
    it('pushes each under its own host path and writes mirror sets for both', async () => {
      const cr = path.join(dir, 'cr2');
      const r = await runCli(['unpack', archive, '--to', `${dst.host}/mirror`, '--keep-host', '--plain-http', '--cluster-resources', cr]);
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      const hostPath = (h: string) => h.replace(':', '-');
      expect(await catalog()).toEqual([`mirror/${hostPath(a.host)}/team/app`, `mirror/${hostPath(b.host)}/team/app`].sort());
      const idms = await readFile(path.join(cr, 'imagedigestmirrorset.yaml'), 'utf8');
      expect(idms).toContain(`source: ${a.host}/team/app`);
      expect(idms).toContain(`source: ${b.host}/team/app`);
      const itms = await readFile(path.join(cr, 'imagetagmirrorset.yaml'), 'utf8');
      expect(itms).toContain(`${dst.host}/mirror/${hostPath(b.host)}/team/app`);
    });
  });
});
