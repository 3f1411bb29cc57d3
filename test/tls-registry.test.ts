import { access, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { runCli } from './support/run-cli.js';
import { makeTestCa, type TestCa } from './support/tls.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const REPO = 'tls/app';

describe('registries over TLS', () => {
  let dir: string;
  let ca: TestCa;
  let src: StartedRegistry;
  let dst: StartedRegistry;
  let fx: FixtureSet;
  let cfg: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-tls-'));
    ca = await makeTestCa(dir);
    [src, dst] = await Promise.all([
      startDistribution({ tls: { certFile: ca.certFile, keyFile: ca.keyFile } }),
      startDistribution({ tls: { certFile: ca.certFile, keyFile: ca.keyFile } }),
    ]);
    expect(src.url).toMatch(/^https:/);
    const client = new RegistryClient({ caFile: ca.caFile });
    fx = await buildFixtures({ seed: 'tls', registry: src.host, repository: REPO });
    await pushStore(fx.store, client.repository(src.host, REPO), { fallbackIndexes: true });
    await client.close();
    // no plainHTTP anywhere: TLS with verification is the default
    cfg = path.join(dir, 'set.yaml');
    await writeFile(cfg, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'trust: { redhat: false }', 'images:', `  - ${src.host}/${REPO}:single`, ''].join('\n'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([src?.stop(), dst?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('when the registry certificate is signed by a private CA', () => {
    it('pack refuses it by default, with one line pointing at --ca-file, and writes nothing', async () => {
      const sub = path.join(dir, 'untrusted');
      await mkdir(sub);
      const out = path.join(sub, 'out.tar');
      const r = await runCli(['pack', '--config', cfg, '-o', out, '--retries', '0'], { env: ENV });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/);
      expect(lines[0]).toContain('--ca-file');
      expect(await readdir(sub)).toEqual([]);
    });

    it('pack and unpack work with --ca-file, and the image arrives with its digest', async () => {
      const out = path.join(dir, 'ok.tar');
      const p = await runCli(['pack', '--config', cfg, '-o', out, '--ca-file', ca.caFile, '--json'], { env: ENV });
      expect(p.stderr).not.toMatch(/airlock: /);
      expect(p.code).toBe(0);
      const single = fx.images.find((i) => i.tag === 'single')!.digest;
      expect((JSON.parse(p.stdout) as { images: { digest: string }[] }).images.map((i) => i.digest)).toEqual([single]);

      // unpack without the CA: refused before anything is pushed
      const bad = await runCli(['unpack', out, '--to', `${dst.host}/mirror`, '--cluster-resources', path.join(dir, 'cr-bad'), '--retries', '0'], { env: ENV });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('--ca-file');

      const u = await runCli(['unpack', out, '--to', `${dst.host}/mirror`, '--ca-file', ca.caFile, '--cluster-resources', path.join(dir, 'cr')], { env: ENV });
      expect(u.stderr).not.toMatch(/airlock: /);
      expect(u.code).toBe(0);
      const check = new RegistryClient({ caFile: ca.caFile });
      try {
        expect((await check.repository(dst.host, `mirror/${REPO}`).resolve('single')).digest).toBe(single);
      } finally {
        await check.close();
      }
    });

    it('refuses a CA file that holds no certificate, as a usage error', async () => {
      const junk = path.join(dir, 'junk.pem');
      await writeFile(junk, 'not a certificate\n');
      const r = await runCli(['pack', '--config', cfg, '-o', path.join(dir, 'junk.tar'), '--ca-file', junk], { env: ENV });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/holds no PEM certificate/);
      await expect(access(path.join(dir, 'junk.tar'))).rejects.toThrow();
    });
  });

  describe('when --plain-http is given for a registry that speaks TLS', () => {
    it('fails with a clear line instead of sending anything in the clear that could succeed', async () => {
      const r = await runCli(['pack', '--config', cfg, '-o', path.join(dir, 'plain.tar'), '--plain-http', '--retries', '0'], { env: ENV });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(src.host);
      expect(lines[0]).toMatch(/speaks TLS: leave out --plain-http/);
    });
  });
});
