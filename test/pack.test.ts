import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { writeImageSet } from './support/image-set.js';
import { runCli } from './support/run-cli.js';

const exec = promisify(execFile);
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

interface PackJson {
  images: { source: string; digest: string }[];
  referrers: Record<string, number>;
  sha256: string;
}

describe('airlock pack', () => {
  let a: TestRegistry; // Distribution 2.8: fallback tag index
  let b: TestRegistry; // airlock serve: referrers API
  let dir: string;
  let app: FixtureSet;
  let tool: FixtureSet;
  let client: RegistryClient;
  const noRekor = ['--config'];

  /** a minimal image-set file: plain HTTP for the test registries, no Red Hat roots (no network here) */
  async function config(name: string, extra: string[] = []): Promise<string> {
    return writeImageSet(path.join(dir, `${name}.yaml`), { extra });
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-pack-'));
    [a, b] = await Promise.all([startRegistry('distribution'), startRegistry('serve')]);
    client = new RegistryClient({ plainHttp: () => true });
    app = await buildFixtures({ seed: 'pack-a', registry: a.host, repository: 'team/app' });
    tool = await buildFixtures({ seed: 'pack-b', registry: b.host, repository: 'other/tool', include: { single: true, cosignSignatures: true } });
    await pushStore(app.store, client.repository(a.host, 'team/app'), { fallbackIndexes: true });
    await pushStore(tool.store, client.repository(b.host, 'other/tool'));
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const digestOf = (set: FixtureSet, tag: string): string => set.images.find((i) => i.tag === tag)!.digest;

  describe('when images come from two registries, by tag and by digest', () => {
    it('packs both into one archive with their signatures', async () => {
      const out = path.join(dir, 'two.tar');
      const pinned = `${b.host}/other/tool@${digestOf(tool, 'single')}`;
      const r = await runCli(['pack', ...noRekor, await config('two'), `${a.host}/team/app:single`, pinned, '-o', out, '--json'], { env: ENV });
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      const rep = JSON.parse(r.stdout) as PackJson;
      expect(rep.images.map((i) => i.digest).sort()).toEqual([digestOf(app, 'single'), digestOf(tool, 'single')].sort());
      expect(rep.images.map((i) => i.source)).toContain(pinned);
      expect(rep.referrers.signature).toBe(2);
    });
  });

  describe('when packing the same content twice with SOURCE_DATE_EPOCH set', () => {
    it('writes byte-identical archives', async () => {
      const cfg = await config('det', ['attachments: all', 'images:', `  - ${a.host}/team/app:multi`, `  - ${b.host}/other/tool:single`]);
      const [x, y] = [path.join(dir, 'det1.tar'), path.join(dir, 'det2.tar')];
      expect((await runCli(['pack', '--config', cfg, '-o', x], { env: ENV })).code).toBe(0);
      expect((await runCli(['pack', '--config', cfg, '-o', y], { env: ENV })).code).toBe(0);
      const [bx, by] = await Promise.all([readFile(x), readFile(y)]);
      expect(bx.equals(by)).toBe(true);
      expect((await readFile(`${x}.sha256`, 'utf8')).split(' ')[0]).toBe((await readFile(`${y}.sha256`, 'utf8')).split(' ')[0]);
    });
  });

  describe('when signatures are turned off', () => {
    it('packs no referrer at all', async () => {
      const out = path.join(dir, 'nosig.tar');
      const r = await runCli(['pack', '--config', await config('nosig'), `${a.host}/team/app:multi`, '--no-signatures', '-o', out, '--json'], { env: ENV });
      expect(r.code).toBe(0);
      const rep = JSON.parse(r.stdout) as PackJson;
      expect(rep.referrers).toEqual({ signature: 0, attestation: 0, sbom: 0, other: 0 });
    });
  });

  describe('when attachments are selected by type', () => {
    it('takes only the matching ones (and the signature on them), by base type', async () => {
      const out = path.join(dir, 'cdx.tar');
      const r = await runCli(
        ['pack', '--config', await config('cdx'), `${a.host}/team/app:multi`, '--attachments', 'application/vnd.cyclonedx', '-o', out, '--json'],
        { env: ENV },
      );
      expect(r.code).toBe(0);
      const rep = JSON.parse(r.stdout) as PackJson;
      expect(rep.referrers.sbom).toBe(1);
      expect(rep.referrers.attestation).toBe(0);
      const inspect = await runCli(['inspect', out, '--json']);
      const inv = JSON.parse(inspect.stdout) as { referrers: { artifactType?: string; kind: string }[] };
      expect(inv.referrers.filter((x) => x.kind === 'sbom').map((x) => x.artifactType)).toEqual(['application/vnd.cyclonedx+json']);
    });

    it('takes every attachment with all, including a referrer of a referrer', async () => {
      const out = path.join(dir, 'all.tar');
      const r = await runCli(['pack', '--config', await config('all'), `${a.host}/team/app:multi`, '--attachments', 'all', '-o', out, '--json'], { env: ENV });
      expect(r.code).toBe(0);
      const inspect = await runCli(['inspect', out, '--json']);
      const inv = JSON.parse(inspect.stdout) as { referrers: { digest: string; subject: string }[] };
      const single = digestOf(app, 'single');
      const want = app.referrers.filter((x) => x.subject !== single).map((x) => `${x.subject}>${x.digest}`).sort();
      expect(inv.referrers.map((x) => `${x.subject}>${x.digest}`).sort()).toEqual(want);
    });
  });

  describe('when an image is unsigned', () => {
    it('packs it without complaint', async () => {
      const r = await runCli(['pack', '--config', await config('uns'), `${a.host}/team/app:unsigned`, '-o', path.join(dir, 'uns.tar')], { env: ENV });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toMatch(/warning|error/i);
    });
  });

  describe('when the oc-mirror ImageSetConfiguration example is given', () => {
    it('packs its additionalImages and leaves out its blockedImages', async () => {
      const text = (await readFile(new URL('../fixtures/config/oc-mirror-local.yaml', import.meta.url), 'utf8'))
        .replaceAll('@SOURCE_A@', a.host)
        .replaceAll('@SOURCE_B@', b.host);
      const cfg = path.join(dir, 'oc-mirror.yaml');
      await writeFile(cfg, text);
      const out = path.join(dir, 'ocm.tar');
      const r = await runCli(['pack', '--config', cfg, '--plain-http', '--no-redhat-trust', '-o', out, '--json'], { env: ENV });
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      const rep = JSON.parse(r.stdout) as PackJson;
      expect(rep.images.map((i) => i.digest).sort()).toEqual([digestOf(app, 'multi'), digestOf(tool, 'single')].sort());
    });
  });

  describe('when skopeo copies an image out of the archive', () => {
    it('pushes the same manifest bytes a registry then serves', async () => {
      const out = path.join(dir, 'skopeo.tar');
      expect((await runCli(['pack', '--config', await config('sk'), `${a.host}/team/app:multi`, '-o', out], { env: ENV })).code).toBe(0);
      const dest = await startRegistry('distribution');
      try {
        await exec('skopeo', ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci-archive:${out}:${a.host}/team/app:multi`, `docker://${dest.host}/copied/app:multi`]);
        const got = await client.repository(dest.host, 'copied/app').fetchManifest('multi');
        expect(got.desc.digest).toBe(digestOf(app, 'multi'));
        expect(got.bytes.equals(app.store.bytes(digestOf(app, 'multi'))!)).toBe(true);
      } finally {
        await dest.stop();
      }
    });
  });

  describe('when the registry fails on a cosign .sig tag', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy(a.host, (req) => (req.url?.endsWith('.sig') ? { status: 500 } : undefined));
    });
    afterAll(async () => proxy?.stop());

    it('fails with one line naming the image, the tag and the status, and leaves nothing at the output path', async () => {
      const out = path.join(dir, 'fail', 'x.tar');
      await (await import('node:fs/promises')).mkdir(path.dirname(out), { recursive: true });
      const r = await runCli(['pack', '--config', await config('fail'), `${proxy.host}/team/app:single`, '--retries', '1', '-o', out], { env: ENV });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/team\/app:single.*cosign tag sha256-[0-9a-f]{64}\.sig.*500/);
      expect(await readdir(path.dirname(out))).toEqual([]);
      await expect(access(out)).rejects.toThrow();
    });
  });
});
