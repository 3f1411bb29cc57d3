/**
 * `airlock serve --archive` on an archive written by `airlock pack`: the signed fixture
 * repository is pushed to `serve`, packed, and the archive is served read-only; every
 * image, cosign tag and OCI 1.1 referrer comes back byte-identical.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { runCli } from './support/run-cli.js';
import { OCI_INDEX, startTestServer, type TestServer } from './server-helpers.js';
import { writeImageSet } from './support/image-set.js';

const REPO = 'airlock-test/app';

describe('airlock serve --archive on a packed archive', () => {
  let src: TestServer;
  let served: RunningServer;
  let dir: string;
  let fx: FixtureSet;
  let client: RegistryClient;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-serve-pack-'));
    src = await startTestServer();
    client = new RegistryClient({ plainHttp: () => true });
    fx = await buildFixtures({ seed: 'serve-archive', registry: src.host, repository: REPO });
    await pushStore(fx.store, client.repository(src.host, REPO));
    const config = await writeImageSet(path.join(dir, 'imageset.yaml'), {
      images: ['multi', 'single', 'unsigned'].map((t) => `${src.host}/${REPO}:${t}`),
      attachments: 'all',
      plainHttp: [src.host],
    });
    const archive = path.join(dir, 'set.tar');
    const r = await runCli(['pack', '--config', config, '-o', archive]);
    if (r.code !== 0) throw new Error(`pack failed (${r.code}): ${r.stderr}`);
    served = await startServer({ archive, listen: '127.0.0.1:0' });
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await served?.close();
    await src?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('when images are pulled from the archive', () => {
    it('serves every image by its tag, byte-identical, under the repository path', async () => {
      for (const im of fx.images) {
        const r = await fetch(`${served.url}/v2/${REPO}/manifests/${im.tag}`);
        expect(r.status, im.tag).toBe(200);
        expect(Buffer.from(await r.arrayBuffer()).equals(fx.store.bytes(im.digest)!)).toBe(true);
        expect(r.headers.get('docker-content-digest')).toBe(im.digest);
      }
    });

    it('serves the cosign tags', async () => {
      const tags = ((await (await fetch(`${served.url}/v2/${REPO}/tags/list`)).json()) as { tags: string[] }).tags;
      for (const t of fx.cosignTags) {
        expect(tags).toContain(t.tag);
        const r = await fetch(`${served.url}/v2/${REPO}/manifests/${t.tag}`);
        expect(Buffer.from(await r.arrayBuffer()).equals(fx.store.bytes(t.digest)!)).toBe(true);
      }
    });

    it('lists the same OCI 1.1 referrers as the registry the archive was packed from', async () => {
      const subjects = new Set(fx.referrers.map((r) => r.subject));
      expect(subjects.size).toBeGreaterThan(0);
      for (const subject of subjects) {
        const fromSource = (await (await fetch(`${src.url}/v2/${REPO}/referrers/${subject}`)).json()) as { manifests: unknown[] };
        const fromArchive = await fetch(`${served.url}/v2/${REPO}/referrers/${subject}`);
        expect(fromArchive.headers.get('content-type')).toBe(OCI_INDEX);
        expect(((await fromArchive.json()) as { manifests: unknown[] }).manifests).toEqual(fromSource.manifests);
      }
    });

    it('serves every blob of every image', async () => {
      const repo = client.repository(served.host, REPO);
      for (const im of fx.images) {
        const { desc } = await repo.fetchManifest(im.tag);
        expect(desc.digest).toBe(im.digest);
      }
      for (const d of fx.store.descriptors()) {
        const r = await fetch(`${served.url}/v2/${REPO}/blobs/${d.digest}`, { method: 'HEAD' });
        expect(r.status, d.digest).toBe(200);
        expect(r.headers.get('content-length')).toBe(String(d.size));
      }
    });
  });
});
