import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../src/errors.js';
import { isIndex, parseManifest } from '../src/oci/manifest.js';
import { RegistryClient } from '../src/registry/client.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { writeImageSet } from './support/image-set.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const REPO = 'team/app';

describe('pack --platform', () => {
  let src: TestRegistry;
  let dir: string;
  let fx: FixtureSet;
  let client: RegistryClient;
  let archive: string;
  let index: { digest: string; amd64: string; arm64: string };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-platform-'));
    src = await startRegistry('distribution');
    client = new RegistryClient({ plainHttp: () => true });
    fx = await buildFixtures({ seed: 'platform', registry: src.host, repository: REPO });
    await pushStore(fx.store, client.repository(src.host, REPO), { fallbackIndexes: true });
    const multi = fx.images.find((i) => i.tag === 'multi')!;
    const m = parseManifest(fx.store.bytes(multi.digest)!);
    if (!isIndex(m)) throw new Error('multi is not an index');
    const child = (arch: string) => m.manifests.find((c) => c.platform?.architecture === arch)!.digest;
    index = { digest: multi.digest, amd64: child('amd64'), arm64: child('arm64') };
    archive = path.join(dir, 'arm64.tar');
    const cfg = await writeImageSet(path.join(dir, 'set.yaml'), {});
    const r = await runCli(['pack', '--config', cfg, `${src.host}/${REPO}:multi`, '--platform', 'linux/arm64', '-o', archive], { env: ENV });
    expect(r.stderr).not.toMatch(/airlock: /);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/platform filter: 1 of 2 platforms packed; the index is kept whole/);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await src?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps the index bytes and packs only the chosen platform', async () => {
    const r = await runCli(['inspect', archive, '--json']);
    expect(r.code).toBe(0);
    const inv = JSON.parse(r.stdout) as { images: { digest: string; platforms: { digest: string }[]; skippedPlatforms: { digest: string }[] }[]; referrers: { subject: string }[] };
    expect(inv.images[0]!.digest).toBe(index.digest);
    expect(inv.images[0]!.platforms.map((p) => p.digest)).toEqual([index.arm64]);
    expect(inv.images[0]!.skippedPlatforms.map((p) => p.digest)).toEqual([index.amd64]);
    // signatures of the index and of the chosen child, none of the child left out
    const subjects = new Set(inv.referrers.map((x) => x.subject));
    expect(subjects.has(index.digest)).toBe(true);
    expect(subjects.has(index.arm64)).toBe(true);
    expect(subjects.has(index.amd64)).toBe(false);
    expect((await runCli(['verify', archive])).code).toBe(0);
  });

  it('unpacks into a registry that accepts a sparse index, with the index digest unchanged', async () => {
    const dst = await startRegistry('serve');
    try {
      const r = await runCli(['unpack', archive, '--to', `${dst.host}/m`, '--plain-http', '--cluster-resources', path.join(dir, 'cr1')]);
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      const dest = client.repository(dst.host, `m/${REPO}`);
      const got = await dest.fetchManifest('multi');
      expect(got.desc.digest).toBe(index.digest);
      expect(got.bytes.equals(fx.store.bytes(index.digest)!)).toBe(true);
      expect((await dest.fetchManifest(index.arm64)).desc.digest).toBe(index.arm64);
      await expect(dest.fetchManifest(index.amd64)).rejects.toSatisfy((e: unknown) => isAirlockError(e, 'NOT_FOUND'));
    } finally {
      await dst.stop();
    }
  });

  it('fails with one clear line where the registry refuses a sparse index, and moves no tag', async () => {
    const dst = await startRegistry('distribution');
    try {
      const r = await runCli(['unpack', archive, '--to', `${dst.host}/m`, '--plain-http', '--retries', '0', '--cluster-resources', path.join(dir, 'cr2')]);
      expect(r.code).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/refused index sha256:[0-9a-f]{64}, 1 of whose platforms are not in the archive.*--platform/);
      // Distribution answers NAME_UNKNOWN for a repository that has blobs but no tag
      const tags: string[] = [];
      try {
        for await (const t of client.repository(dst.host, `m/${REPO}`).tags()) tags.push(t);
      } catch (e) {
        if (!isAirlockError(e, 'NOT_FOUND')) throw e;
      }
      expect(tags).toEqual([]);
    } finally {
      await dst.stop();
    }
  });
});
