import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { parseManifest, type ImageIndex } from '../src/oci/manifest.js';
import { fallbackTag } from '../src/oci/referrers.js';
import { buildFixtures, pushStore, startRekorMock, type FixtureSet, type RekorMock } from './support/fixtures/index.js';
import { writeImageSet } from './support/image-set.js';
import { serveFiles } from './support/key-server.js';
import { startRegistry, type RegistryKind, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const exec = promisify(execFile);
const REPO = 'airlock-test/app';

const ROUTES: [RegistryKind, RegistryKind][] = [
  ['distribution', 'serve'],
  ['serve', 'distribution'],
  ['distribution', 'serve-no-referrers'],
];

describe.each(ROUTES)('pack → verify → unpack (%s → archive → %s)', (srcKind, dstKind) => {
  let src: TestRegistry;
  let dst: TestRegistry;
  let rekor: RekorMock;
  let keySrv: { url: string; stop(): Promise<void> };
  let dir: string;
  let fx: FixtureSet;
  let client: RegistryClient;
  let archive: string;
  let config: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-e2e-'));
    [src, dst, rekor] = await Promise.all([startRegistry(srcKind), startRegistry(dstKind), startRekorMock()]);
    keySrv = await serveFiles({ '/rekor.pub': rekor.publicKeyPem });
    client = new RegistryClient({ plainHttp: () => true });
    fx = await buildFixtures({ seed: 'e2e', registry: src.host, repository: REPO, rekorUrl: rekor.url });
    await pushStore(fx.store, client.repository(src.host, REPO), { fallbackIndexes: !src.referrersApi });
    config = await writeImageSet(path.join(dir, 'imageset.yaml'), {
      images: ['multi', 'single', 'unsigned'].map((t) => `${src.host}/${REPO}:${t}`),
      attachments: 'all',
      plainHttp: [src.host],
      trust: [`rekorKeyUrl: ${keySrv.url}/rekor.pub`],
    });
    archive = path.join(dir, 'set.tar');
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([src?.stop(), dst?.stop(), rekor?.stop(), keySrv?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('packs every image with all signatures and attachments, and writes the sidecar', async () => {
    const r = await runCli(['pack', '--config', config, '-o', archive, '--json']);
    expect(r.stderr).not.toMatch(/airlock: /);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { images: { source: string; digest: string }[]; referrers: Record<string, number>; sha256: string };
    const tags = Object.fromEntries(fx.images.map((im) => [im.tag, im.digest]));
    expect(report.images.map((i) => i.digest).sort()).toEqual([tags.multi, tags.single, tags.unsigned].sort());
    const expected = { signature: 0, attestation: 0, sbom: 0, other: 0 } as Record<string, number>;
    for (const ref of fx.referrers) expected[ref.kind === 'attestation' ? 'attestation' : ref.kind] = (expected[ref.kind] ?? 0) + 1;
    expect(report.referrers).toEqual(expected);
    const sidecar = await readFile(`${archive}.sha256`, 'utf8');
    expect(sidecar).toBe(`${report.sha256}  set.tar\n`);
  });

  it('verifies and inspects the archive offline', async () => {
    const v = await runCli(['verify', archive]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/: ok/);
    const i = await runCli(['inspect', archive]);
    expect(i.code).toBe(0);
    expect(i.stdout).toContain(`${src.host}/${REPO}:multi`);
    expect(i.stdout).toContain('platform linux/arm64');
    expect(i.stdout).toContain('redhat (public-key)');
    expect(i.stdout).toContain('redhat-rekor (rekor-key)');
  });

  it('is read by skopeo: every image in the archive, manifest bytes identical', async () => {
    for (const im of fx.images) {
      const ref = `${src.host}/${REPO}:${im.tag}`;
      const { stdout } = await exec('skopeo', ['inspect', '--raw', `oci-archive:${archive}:${ref}`]);
      expect(Buffer.from(stdout).equals(fx.store.bytes(im.digest)!)).toBe(true);
    }
  });

  /** What the destination lists for a subject: the referrers API where it has one, else the fallback tag index. */
  async function listedReferrers(dest: ReturnType<RegistryClient['repository']>, subject: string): Promise<string[]> {
    const desc = (await dest.fetchManifest(subject)).desc;
    if (dst.referrersApi) {
      const api = await dest.referrersFromApi(desc);
      expect(api).toBeDefined();
      return api!.map((d) => d.digest).sort();
    }
    expect(await dest.referrersFromApi(desc)).toBeUndefined();
    const idx = await dest.fetchManifest(fallbackTag(desc.digest));
    return (parseManifest(idx.bytes) as ImageIndex).manifests.map((m) => m.digest).sort();
  }

  it('unpacks with digests and referrers intact', async () => {
    const r = await runCli(['unpack', archive, '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr'), '--json']);
    expect(r.stderr).not.toMatch(/airlock: /);
    expect(r.code).toBe(0);
    const dest = client.repository(dst.host, `mirror/${REPO}`);
    for (const im of fx.images) {
      const got = await dest.fetchManifest(im.tag);
      expect(got.desc.digest).toBe(im.digest);
      expect(got.bytes.equals(fx.store.bytes(im.digest)!)).toBe(true);
    }
    for (const t of fx.cosignTags) {
      const got = await dest.fetchManifest(t.tag);
      expect(got.desc.digest).toBe(t.digest);
    }
    // every referrer is listed once, by the referrers API or in the fallback index
    const subjects = new Set(fx.referrers.filter((x) => x.via === 'referrers').map((x) => x.subject));
    for (const s of subjects) {
      const want = fx.referrers.filter((x) => x.via === 'referrers' && x.subject === s).map((x) => x.digest).sort();
      expect(await listedReferrers(dest, s)).toEqual(want);
    }
    const idms = await readFile(path.join(dir, 'cr', 'imagedigestmirrorset.yaml'), 'utf8');
    expect(idms).toContain(`source: ${src.host}/${REPO}`);
    expect(idms).toContain(`${dst.host}/mirror/${REPO}`);
  });

  it('unpacking again pushes nothing new and leaves each referrer listed once', async () => {
    const r = await runCli(['unpack', archive, '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr'), '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as { pushed: { blobs: number; manifests: number }; fallbackUpdates: number };
    expect(rep.pushed.blobs).toBe(0);
    expect(rep.pushed.manifests).toBe(0);
    expect(rep.fallbackUpdates).toBe(0);
    const dest = client.repository(dst.host, `mirror/${REPO}`);
    for (const s of new Set(fx.referrers.filter((x) => x.via === 'referrers').map((x) => x.subject))) {
      const listed = await listedReferrers(dest, s);
      expect(new Set(listed).size).toBe(listed.length);
      expect(listed.length).toBe(fx.referrers.filter((x) => x.via === 'referrers' && x.subject === s).length);
    }
  });
});
