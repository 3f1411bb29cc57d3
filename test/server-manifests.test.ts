/**
 * What `airlock serve` refuses in a pushed manifest so that it never serves one whose
 * descriptors lead nowhere: duplicate or case-folded keys that two parsers read two ways,
 * `urls` used to skip the presence check, sizes that disagree with the blob, and (with
 * sparseIndex off) an index whose children are absent. And the reads of references that
 * cannot exist, which are unknown (404), not bad requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blob, errorCode, OCI_INDEX, OCI_MANIFEST, pushBlob, putManifest, seedImage, sha256, startTestServer, type TestServer } from './server-helpers.js';

const LAYER = 'application/vnd.oci.image.layer.v1.tar';
const FOREIGN = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';

describe('airlock serve manifest checks', () => {
  let s: TestServer;
  let base: string;
  const repo = 'strict/app';
  let present: { config: { digest: string; size: number }; layer: { digest: string; size: number } };
  const missing = blob('never pushed');
  const desc = (mediaType: string, b: { digest: string; size: number }, extra: Record<string, unknown> = {}) => ({ mediaType, digest: b.digest, size: b.size, ...extra });
  const configDesc = () => desc('application/vnd.oci.image.config.v1+json', present.config);

  beforeAll(async () => {
    s = await startTestServer();
    base = s.url;
    const img = await seedImage(base, repo, 'strict');
    present = { config: img.config, layer: img.layer };
  });
  afterAll(async () => {
    await s.dispose();
  });

  async function refused(body: string, code: string, type = OCI_MANIFEST): Promise<void> {
    const r = await putManifest(base, repo, 'bad', body, type);
    expect(r.status, body.slice(0, 200)).toBe(400);
    expect(await errorCode(r)).toBe(code);
    expect((await fetch(`${base}/v2/${repo}/manifests/${sha256(body)}`)).status).toBe(404);
  }

  describe('when a key appears twice, or in two cases', () => {
    it('refuses a duplicate "layers" whose first copy names a missing blob', async () => {
      const body = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(configDesc())},"layers":[${JSON.stringify(desc(LAYER, missing))}],"layers":[]}`;
      await refused(body, 'MANIFEST_INVALID');
    });

    it('refuses a "Layers" key next to "layers" (Go clients read either)', async () => {
      const body = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(configDesc())},"layers":[${JSON.stringify(desc(LAYER, present.layer))}],"Layers":[${JSON.stringify(desc(LAYER, missing))}]}`;
      await refused(body, 'MANIFEST_INVALID');
    });

    it('refuses a descriptor with two digests', async () => {
      const body = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(configDesc())},"layers":[{"mediaType":"${LAYER}","digest":"${missing.digest}","size":${present.layer.size},"digest":"${present.layer.digest}"}]}`;
      await refused(body, 'MANIFEST_INVALID');
    });

    it('still accepts keys that differ in case inside annotations (a map, not a struct)', async () => {
      const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [desc(LAYER, present.layer)], annotations: { Team: 'a', team: 'b' } });
      expect((await putManifest(base, repo, 'annotated', body, OCI_MANIFEST)).status).toBe(201);
    });
  });

  describe('when a layer has urls', () => {
    it('refuses urls on an ordinary layer instead of skipping its presence check', async () => {
      const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [desc(LAYER, missing, { urls: ['https://example.invalid/layer'] })] });
      await refused(body, 'MANIFEST_INVALID');
    });

    it('accepts an absent non-distributable layer with http(s) urls, and refuses other urls', async () => {
      const ok = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [desc(FOREIGN, missing, { urls: ['https://example.invalid/layer.tar.gz'] })] });
      expect((await putManifest(base, repo, 'foreign', ok, OCI_MANIFEST)).status).toBe(201);
      for (const u of ['ftp://example.invalid/x', 'https://example.invalid/x#frag', 'not a url']) {
        await refused(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [desc(FOREIGN, missing, { urls: [u] })] }), 'MANIFEST_INVALID');
      }
    });

    it('requires a non-distributable layer without urls to be present', async () => {
      await refused(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [desc(FOREIGN, missing)] }), 'MANIFEST_BLOB_UNKNOWN');
    });
  });

  describe('when descriptors disagree with what is stored', () => {
    it('refuses a layer whose size is not the blob size', async () => {
      await refused(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [desc(LAYER, { digest: present.layer.digest, size: present.layer.size + 1 })] }), 'MANIFEST_INVALID');
    });

    it('refuses a manifest with the fields of both an image manifest and an index', async () => {
      await refused(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc(), layers: [], manifests: [] }), 'MANIFEST_INVALID');
      await refused(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], layers: [desc(LAYER, missing)] }), 'MANIFEST_INVALID', OCI_INDEX);
    });
  });

  describe('when sparse indexes are refused (--no-sparse-index)', () => {
    it('answers MANIFEST_BLOB_UNKNOWN for an index whose child is absent, and accepts it once the child is pushed', async () => {
      const strict = await startTestServer({ sparseIndex: false });
      try {
        const img = await seedImage(strict.url, 'sparse/app', 'child');
        const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: img.digest, size: img.bytes.byteLength }] });
        const early = await putManifest(strict.url, 'sparse/app', 'multi', index, OCI_INDEX);
        expect(early.status).toBe(400);
        const body = (await early.json()) as { errors: Array<{ code: string; detail: { digest: string } }> };
        expect(body.errors[0]).toMatchObject({ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: img.digest } });
        expect((await putManifest(strict.url, 'sparse/app', img.digest, img.bytes, OCI_MANIFEST)).status).toBe(201);
        expect((await putManifest(strict.url, 'sparse/app', 'multi', index, OCI_INDEX)).status).toBe(201);
      } finally {
        await strict.dispose();
      }
    });
  });

  describe('when a reference cannot exist (distribution-spec pull; conformance ".INVALID_MANIFEST_NAME")', () => {
    it('answers GET and HEAD with 404 MANIFEST_UNKNOWN, and DELETE too', async () => {
      for (const ref of ['.INVALID_MANIFEST_NAME', 'sha256:totallywrong', '-leading-dash', 'x'.repeat(129)]) {
        const g = await fetch(`${base}/v2/${repo}/manifests/${ref}`);
        expect(g.status, ref).toBe(404);
        expect(await errorCode(g)).toBe('MANIFEST_UNKNOWN');
        const h = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'HEAD' });
        expect(h.status, ref).toBe(404);
        const d = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'DELETE' });
        expect(d.status, ref).toBe(404);
        expect(await errorCode(d)).toBe('MANIFEST_UNKNOWN');
      }
    });

    it('keeps refusing a PUT of one with 400', async () => {
      const img = await seedImage(base, repo, 'put-bad-ref');
      const r = await putManifest(base, repo, '.INVALID_MANIFEST_NAME', img.bytes, OCI_MANIFEST);
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('MANIFEST_INVALID');
      const d = await putManifest(base, repo, 'sha256:totallywrong', img.bytes, OCI_MANIFEST);
      expect(d.status).toBe(400);
      expect(await errorCode(d)).toBe('DIGEST_INVALID');
    });
  });

  describe('when the conformance suite pushes its own shapes', () => {
    it('accepts a manifest without mediaType or layers, whose config carries data and an unknown field', async () => {
      const cfg = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, null, '\t'));
      expect((await pushBlob(base, repo, cfg)).status).toBe(201);
      const body = JSON.stringify(
        { schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg.digest, size: cfg.size, data: cfg.bytes.toString('base64'), newUnspecifiedField: 'aGVsbG8=' }, layers: [] },
        null,
        '\t',
      );
      const r = await putManifest(base, repo, 'emptylayer', body, OCI_MANIFEST);
      expect(r.status).toBe(201);
      const g = await fetch(`${base}/v2/${repo}/manifests/emptylayer`);
      expect(await g.text()).toBe(body);
    });
  });
});
