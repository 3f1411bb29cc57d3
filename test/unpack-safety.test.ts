import { copyFile, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveReader } from '../src/layout/reader.js';
import { RegistryClient } from '../src/registry/client.js';
import { isManifestMediaType } from '../src/oci/media-types.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { writeImageSet } from './support/image-set.js';
import { runCli } from './support/run-cli.js';
import { readTar, writeTar } from './support/tar-edit.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

describe('unpack and verify refuse a bad archive before pushing anything', () => {
  let src: TestRegistry;
  let dst: TestRegistry;
  let dir: string;
  let good: string;
  let fx: FixtureSet;
  let client: RegistryClient;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-safety-'));
    [src, dst] = await Promise.all([startRegistry('serve'), startRegistry('distribution')]);
    client = new RegistryClient({ plainHttp: () => true });
    fx = await buildFixtures({ seed: 'safety', registry: src.host, repository: 'team/app' });
    await pushStore(fx.store, client.repository(src.host, 'team/app'));
    const cfg = await writeImageSet(path.join(dir, 'set.yaml'), { attachments: 'all' });
    good = path.join(dir, 'good.tar');
    const r = await runCli(['pack', '--config', cfg, `${src.host}/team/app:multi`, '-o', good], { env: ENV });
    expect(r.code).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([src?.stop(), dst?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function catalog(): Promise<string[]> {
    const out: string[] = [];
    for await (const r of client.catalog(dst.host)) out.push(r);
    return out;
  }

  async function expectRefused(file: string, pattern: RegExp): Promise<void> {
    for (const cmd of [['verify', file], ['unpack', file, '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr')]]) {
      const r = await runCli(cmd);
      expect(r.code, `${cmd[0]}: ${r.stderr}`).toBe(4);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(pattern);
      expect(r.stdout).toBe('');
    }
    expect(await catalog()).toEqual([]);
    await expect(readdir(path.join(dir, 'cr'))).rejects.toThrow();
  }

  it('accepts the good archive (control)', async () => {
    const r = await runCli(['verify', good]);
    expect(r.code).toBe(0);
  });

  describe('when a blob is corrupted in place', () => {
    it('fails naming the blob', async () => {
      const bad = path.join(dir, 'corrupt.tar');
      await copyFile(good, bad);
      const reader = await ArchiveReader.open(bad);
      const layer = [...reader.entries()].find((e) => e.name.startsWith('blobs/') && e.size > 100 && !isManifestMediaType(''))!;
      await reader.close();
      const fh = await open(bad, 'r+');
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, layer.offset + 10);
      b[0] = b[0]! ^ 0xff;
      await fh.write(b, 0, 1, layer.offset + 10);
      await fh.close();
      await expectRefused(bad, new RegExp(layer.name.split('/')[2]!.slice(0, 12)));
    });
  });

  describe('when a blob is missing', () => {
    it('fails naming what is missing', async () => {
      const entries = await readTar(good);
      const reader = await ArchiveReader.open(good);
      const layers = [...reader.entries()].filter((e) => e.name.startsWith('blobs/'));
      await reader.close();
      // drop the largest blob: a layer
      const victim = layers.sort((x, y) => y.size - x.size)[0]!;
      const bad = path.join(dir, 'missing.tar');
      await writeTar(bad, entries.filter((e) => e.name !== victim.name));
      await expectRefused(bad, /not in the archive/);
    });
  });

  describe('when an entry climbs out with ..', () => {
    it('fails naming the entry, and writes nothing outside', async () => {
      const entries = await readTar(good);
      const bad = path.join(dir, 'sub', 'dotdot.tar');
      await (await import('node:fs/promises')).mkdir(path.dirname(bad), { recursive: true });
      await writeTar(bad, [...entries.slice(0, 2), { name: '../evil', body: Buffer.from('pwned') }, ...entries.slice(2)]);
      await expectRefused(bad, /\.\.\/evil|\.\./);
      expect(await readdir(path.join(dir))).not.toContain('evil');
    });
  });
});
