/**
 * distribution-spec v1.1 conformance of `airlock serve`, written from spec.md:
 * pull, push, content discovery, content management, referrers, and the error cases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../src/oci/digest.js';
import { noCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import {
  blob,
  DOCKER_MANIFEST,
  errorCode,
  OCI_INDEX,
  OCI_MANIFEST,
  pushBlob,
  putManifest,
  seedImage,
  sha256,
  startTestServer,
  type TestServer,
} from './server-helpers.js';

describe('airlock serve', () => {
  let s: TestServer;
  let base: string;
  beforeAll(async () => {
    s = await startTestServer();
    base = s.url;
  });
  afterAll(async () => {
    await s.dispose();
  });

  describe('when a client checks the API version (end-1)', () => {
    it('answers 200 with the Docker-Distribution-API-Version header', async () => {
      const r = await fetch(`${base}/v2/`);
      expect(r.status).toBe(200);
      expect(r.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    });
  });

  describe('when blobs are pushed', () => {
    it('completes a single POST ?digest= upload with 201, Location and Docker-Content-Digest', async () => {
      const b = blob('monolithic post');
      const r = await fetch(`${base}/v2/push/post/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: b.bytes });
      expect(r.status).toBe(201);
      expect(r.headers.get('location')).toBe(`/v2/push/post/blobs/${b.digest}`);
      expect(r.headers.get('docker-content-digest')).toBe(b.digest);
      const g = await fetch(`${base}/v2/push/post/blobs/${b.digest}`);
      expect(g.status).toBe(200);
      expect(Buffer.from(await g.arrayBuffer())).toEqual(b.bytes);
      expect(g.headers.get('docker-content-digest')).toBe(b.digest);
    });

    it('completes POST then PUT, and HEAD reports Content-Length', async () => {
      const b = blob('post then put');
      const r = await pushBlob(base, 'push/put', b);
      expect(r.status).toBe(201);
      const h = await fetch(`${base}/v2/push/put/blobs/${b.digest}`, { method: 'HEAD' });
      expect(h.status).toBe(200);
      expect(h.headers.get('content-length')).toBe(String(b.size));
      expect(h.headers.get('docker-content-digest')).toBe(b.digest);
    });

    it('accepts chunks in order with Content-Range, reports progress, and refuses an out-of-order chunk with 416', async () => {
      const b = blob('0123456789abcdefghij');
      const start = await fetch(`${base}/v2/push/chunks/blobs/uploads/`, { method: 'POST' });
      expect(start.status).toBe(202);
      const loc1 = new URL(start.headers.get('location')!, base);
      const p1 = await fetch(loc1, { method: 'PATCH', body: b.bytes.subarray(0, 10), headers: { 'content-range': '0-9', 'content-type': 'application/octet-stream' } });
      expect(p1.status).toBe(202);
      expect(p1.headers.get('range')).toBe('0-9');
      const loc2 = new URL(p1.headers.get('location')!, base);
      const bad = await fetch(loc2, { method: 'PATCH', body: b.bytes.subarray(15), headers: { 'content-range': '15-19' } });
      expect(bad.status).toBe(416);
      // retrying the chunk already received is out of order too
      const retry = await fetch(loc2, { method: 'PATCH', body: b.bytes.subarray(0, 10), headers: { 'content-range': '0-9' } });
      expect(retry.status).toBe(416);
      const status = await fetch(loc2);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-9');
      expect(status.headers.get('location')).toBe(loc2.pathname);
      const p2 = await fetch(loc2, { method: 'PATCH', body: b.bytes.subarray(10), headers: { 'content-range': '10-19' } });
      expect(p2.status).toBe(202);
      expect(p2.headers.get('range')).toBe('0-19');
      const fin = new URL(p2.headers.get('location')!, base);
      fin.searchParams.set('digest', b.digest);
      const put = await fetch(fin, { method: 'PUT' });
      expect(put.status).toBe(201);
      const g = await fetch(`${base}/v2/push/chunks/blobs/${b.digest}`);
      expect(Buffer.from(await g.arrayBuffer())).toEqual(b.bytes);
    });

    it('accepts a streamed PATCH without Content-Range followed by an empty PUT', async () => {
      const b = blob('streamed patch body');
      const start = await fetch(`${base}/v2/push/stream/blobs/uploads/`, { method: 'POST' });
      const p = await fetch(new URL(start.headers.get('location')!, base), { method: 'PATCH', body: b.bytes });
      expect(p.status).toBe(202);
      const fin = new URL(p.headers.get('location')!, base);
      fin.searchParams.set('digest', b.digest);
      expect((await fetch(fin, { method: 'PUT' })).status).toBe(201);
      expect((await fetch(`${base}/v2/push/stream/blobs/${b.digest}`, { method: 'HEAD' })).status).toBe(200);
    });

    it('refuses a PUT whose content does not match ?digest= with 400 DIGEST_INVALID, and stores nothing', async () => {
      const b = blob('real content');
      const wrong = sha256('other content');
      const start = await fetch(`${base}/v2/push/mismatch/blobs/uploads/`, { method: 'POST' });
      const loc = new URL(start.headers.get('location')!, base);
      loc.searchParams.set('digest', wrong);
      const r = await fetch(loc, { method: 'PUT', body: b.bytes });
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('DIGEST_INVALID');
      expect((await fetch(`${base}/v2/push/mismatch/blobs/${wrong}`, { method: 'HEAD' })).status).toBe(404);
      expect((await fetch(`${base}/v2/push/mismatch/blobs/${b.digest}`, { method: 'HEAD' })).status).toBe(404);
    });

    it('mounts a blob from another repository with 201, and opens a session (202) when the source lacks it', async () => {
      const b = blob('mount me');
      expect((await pushBlob(base, 'mount/src', b)).status).toBe(201);
      const m = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${b.digest}&from=mount/src`, { method: 'POST' });
      expect(m.status).toBe(201);
      expect(m.headers.get('location')).toBe(`/v2/mount/dst/blobs/${b.digest}`);
      const g = await fetch(`${base}/v2/mount/dst/blobs/${b.digest}`);
      expect(Buffer.from(await g.arrayBuffer())).toEqual(b.bytes);
      const miss = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${sha256('absent')}&from=mount/src`, { method: 'POST' });
      expect(miss.status).toBe(202);
      expect(miss.headers.get('location')).toMatch(/^\/v2\/mount\/dst\/blobs\/uploads\/[0-9a-f-]+$/);
      const noFrom = await fetch(`${base}/v2/mount/dst/blobs/uploads/?mount=${sha256('absent')}`, { method: 'POST' });
      expect(noFrom.status).toBe(202);
      expect(noFrom.headers.get('location')).toMatch(/^\/v2\/mount\/dst\/blobs\/uploads\/[0-9a-f-]+$/);
    });

    it('does not mount from a "from" that is not a repository name', async () => {
      const b = blob('not reachable by path');
      await pushBlob(base, 'mount/src2', b);
      const r = await fetch(`${base}/v2/mount/dst2/blobs/uploads/?mount=${b.digest}&from=${encodeURIComponent('../repositories/mount/src2')}`, { method: 'POST' });
      expect(r.status).toBe(202);
      expect((await fetch(`${base}/v2/mount/dst2/blobs/${b.digest}`, { method: 'HEAD' })).status).toBe(404);
    });

    it('cancels an upload with DELETE (204) and then answers 404 BLOB_UPLOAD_UNKNOWN for it', async () => {
      const start = await fetch(`${base}/v2/push/cancel/blobs/uploads/`, { method: 'POST' });
      const loc = new URL(start.headers.get('location')!, base);
      expect((await fetch(loc, { method: 'DELETE' })).status).toBe(204);
      const r = await fetch(loc);
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('BLOB_UPLOAD_UNKNOWN');
    });

    it('does not let an upload session of one repository be finished through another', async () => {
      const start = await fetch(`${base}/v2/push/owner/blobs/uploads/`, { method: 'POST' });
      const id = start.headers.get('docker-upload-uuid')!;
      const r = await fetch(`${base}/v2/push/other/blobs/uploads/${id}?digest=${sha256('')}`, { method: 'PUT' });
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('when blobs are pulled', () => {
    it('serves a Range request with 206 and Content-Range, and 416 past the end', async () => {
      const b = blob('abcdefghijklmnopqrstuvwxyz');
      await pushBlob(base, 'pull/range', b);
      const r = await fetch(`${base}/v2/pull/range/blobs/${b.digest}`, { headers: { range: 'bytes=5-9' } });
      expect(r.status).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes 5-9/${b.size}`);
      expect(await r.text()).toBe('fghij');
      const tail = await fetch(`${base}/v2/pull/range/blobs/${b.digest}`, { headers: { range: 'bytes=20-' } });
      expect(await tail.text()).toBe('uvwxyz');
      const past = await fetch(`${base}/v2/pull/range/blobs/${b.digest}`, { headers: { range: 'bytes=100-' } });
      expect(past.status).toBe(416);
    });

    it('accepts a digest whose colon is percent-encoded', async () => {
      const b = blob('encoded colon');
      await pushBlob(base, 'pull/encoded', b);
      const r = await fetch(`${base}/v2/pull/encoded/blobs/${b.digest.replace(':', '%3A')}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('docker-content-digest')).toBe(b.digest);
    });

    it('answers 404 BLOB_UNKNOWN for an unknown blob and for a blob of another repository', async () => {
      const b = blob('only in one repo');
      await pushBlob(base, 'pull/one', b);
      for (const url of [`${base}/v2/pull/one/blobs/${sha256('nope')}`, `${base}/v2/pull/two/blobs/${b.digest}`]) {
        const r = await fetch(url);
        expect(r.status).toBe(404);
        expect(await errorCode(r)).toBe('BLOB_UNKNOWN');
      }
    });

    it('answers 400 DIGEST_INVALID for a malformed digest and 400 NAME_INVALID for a bad name', async () => {
      const d = await fetch(`${base}/v2/pull/one/blobs/sha256:xyz`);
      expect(d.status).toBe(400);
      expect(await errorCode(d)).toBe('DIGEST_INVALID');
      const n = await fetch(`${base}/v2/Bad_Name/manifests/latest`);
      expect(n.status).toBe(400);
      expect(await errorCode(n)).toBe('NAME_INVALID');
    });
  });

  describe('when manifests are pushed and pulled', () => {
    it('stores the exact bytes: GET by tag and by digest returns them with the pushed media type', async () => {
      const img = await seedImage(base, 'man/exact', 'exact');
      // deliberately odd whitespace: a re-serializing registry would change the digest
      const bytes = Buffer.from(img.bytes.toString().replace('{"schemaVersion":2', '{ "schemaVersion" : 2'));
      const put = await putManifest(base, 'man/exact', 'v1', bytes, OCI_MANIFEST);
      expect(put.status).toBe(201);
      expect(put.headers.get('docker-content-digest')).toBe(sha256(bytes));
      expect(put.headers.get('location')).toBe(`/v2/man/exact/manifests/${sha256(bytes)}`);
      for (const ref of ['v1', sha256(bytes)]) {
        const g = await fetch(`${base}/v2/man/exact/manifests/${ref}`, { headers: { accept: OCI_MANIFEST } });
        expect(g.status).toBe(200);
        expect(g.headers.get('content-type')).toBe(OCI_MANIFEST);
        expect(g.headers.get('docker-content-digest')).toBe(sha256(bytes));
        expect(Buffer.from(await g.arrayBuffer())).toEqual(bytes);
      }
      const h = await fetch(`${base}/v2/man/exact/manifests/v1`, { method: 'HEAD' });
      expect(h.headers.get('content-length')).toBe(String(bytes.byteLength));
      // a manifest is a blob too
      const asBlob = await fetch(`${base}/v2/man/exact/blobs/${sha256(bytes)}`);
      expect(Buffer.from(await asBlob.arrayBuffer())).toEqual(bytes);
    });

    it('accepts a Docker v2 manifest and serves it with its media type', async () => {
      const img = await seedImage(base, 'man/docker', 'docker');
      const m = JSON.parse(img.bytes.toString()) as Record<string, unknown>;
      const bytes = Buffer.from(JSON.stringify({ ...m, mediaType: DOCKER_MANIFEST }));
      expect((await putManifest(base, 'man/docker', 'latest', bytes, DOCKER_MANIFEST)).status).toBe(201);
      const g = await fetch(`${base}/v2/man/docker/manifests/latest`);
      expect(g.headers.get('content-type')).toBe(DOCKER_MANIFEST);
    });

    it('refuses a PUT by digest that does not match the body with 400 DIGEST_INVALID', async () => {
      const img = await seedImage(base, 'man/dig', 'dig');
      const r = await putManifest(base, 'man/dig', sha256('something else'), img.bytes, OCI_MANIFEST);
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('DIGEST_INVALID');
    });

    it('refuses invalid manifests with 400 MANIFEST_INVALID', async () => {
      const img = await seedImage(base, 'man/invalid', 'invalid');
      const cases: Array<[string, string]> = [
        ['{not json', OCI_MANIFEST],
        [JSON.stringify({ schemaVersion: 1, name: 'x' }), OCI_MANIFEST],
        [JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }), OCI_MANIFEST],
        [img.bytes.toString(), DOCKER_MANIFEST], // body says OCI, header says Docker
        [img.bytes.toString().replace(OCI_MANIFEST, 'application/x-unknown'), 'application/x-unknown'],
      ];
      for (const [body, type] of cases) {
        const r = await putManifest(base, 'man/invalid', 'bad', body, type);
        expect(r.status, body).toBe(400);
        expect(await errorCode(r)).toBe('MANIFEST_INVALID');
      }
      expect((await fetch(`${base}/v2/man/invalid/manifests/bad`)).status).toBe(404);
    });

    it('refuses a manifest over 4 MiB with 413', async () => {
      const img = await seedImage(base, 'man/big', 'big');
      const m = JSON.parse(img.bytes.toString()) as Record<string, unknown>;
      const bytes = Buffer.from(JSON.stringify({ ...m, annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } }));
      const r = await putManifest(base, 'man/big', 'big', bytes, OCI_MANIFEST);
      expect(r.status).toBe(413);
    });

    it('refuses a manifest whose blobs are not in the repository with 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const img = await seedImage(base, 'man/blobs-elsewhere', 'elsewhere');
      const r = await putManifest(base, 'man/no-blobs', 'latest', img.bytes, OCI_MANIFEST);
      expect(r.status).toBe(400);
      const body = (await r.json()) as { errors: Array<{ code: string; detail: { digest: string } }> };
      expect(body.errors[0]!.code).toBe('MANIFEST_BLOB_UNKNOWN');
      expect([img.config.digest, img.layer.digest]).toContain(body.errors[0]!.detail.digest);
    });

    it('accepts a sparse index whose children are absent, and serves the child once it is pushed', async () => {
      const img = await seedImage(base, 'man/index', 'child');
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [{ mediaType: OCI_MANIFEST, digest: img.digest, size: img.bytes.byteLength, platform: { architecture: 'amd64', os: 'linux' } }],
        }),
      );
      const early = await putManifest(base, 'man/index', 'multi', index, OCI_INDEX);
      expect(early.status).toBe(201);
      expect(early.headers.get('docker-content-digest')).toBe(sha256(index));
      expect((await fetch(`${base}/v2/man/index/manifests/${img.digest}`, { headers: { accept: OCI_MANIFEST } })).status).toBe(404);
      expect((await putManifest(base, 'man/index', img.digest, img.bytes, OCI_MANIFEST)).status).toBe(201);
      expect((await fetch(`${base}/v2/man/index/manifests/${img.digest}`, { headers: { accept: OCI_MANIFEST } })).status).toBe(200);
    });

    it('answers 404 MANIFEST_UNKNOWN for an unknown tag or digest', async () => {
      for (const ref of ['nope', sha256('nope')]) {
        const r = await fetch(`${base}/v2/man/exact/manifests/${ref}`);
        expect(r.status).toBe(404);
        expect(await errorCode(r)).toBe('MANIFEST_UNKNOWN');
      }
    });
  });

  describe('when content is discovered', () => {
    beforeAll(async () => {
      const img = await seedImage(base, 'disc/tags', 'tags');
      for (const t of ['b', 'a', 'd', 'c', 'e']) await putManifest(base, 'disc/tags', t, img.bytes, OCI_MANIFEST);
    });

    it('lists tags in lexical order', async () => {
      const r = await fetch(`${base}/v2/disc/tags/tags/list`);
      expect(await r.json()).toEqual({ name: 'disc/tags', tags: ['a', 'b', 'c', 'd', 'e'] });
    });

    it('pages tags with n and last, and a Link to the next page', async () => {
      const r = await fetch(`${base}/v2/disc/tags/tags/list?n=2`);
      expect(await r.json()).toEqual({ name: 'disc/tags', tags: ['a', 'b'] });
      expect(r.headers.get('link')).toBe('</v2/disc/tags/tags/list?n=2&last=b>; rel="next"');
      const next = await fetch(new URL(/<([^>]+)>/.exec(r.headers.get('link')!)![1]!, base));
      expect(await next.json()).toEqual({ name: 'disc/tags', tags: ['c', 'd'] });
      const last = await fetch(`${base}/v2/disc/tags/tags/list?n=2&last=d`);
      expect(await last.json()).toEqual({ name: 'disc/tags', tags: ['e'] });
      expect(last.headers.get('link')).toBeNull();
      const zero = await fetch(`${base}/v2/disc/tags/tags/list?n=0`);
      expect(((await zero.json()) as { tags: string[] }).tags).toEqual([]);
    });

    it('answers 404 NAME_UNKNOWN for the tags of an unknown repository', async () => {
      const r = await fetch(`${base}/v2/disc/none/tags/list`);
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('NAME_UNKNOWN');
    });

    it('lists repositories in _catalog, paged', async () => {
      const all = (await (await fetch(`${base}/v2/_catalog`)).json()) as { repositories: string[] };
      expect(all.repositories).toContain('disc/tags');
      expect(all.repositories).toEqual([...all.repositories].sort());
      const page = await fetch(`${base}/v2/_catalog?n=1`);
      expect(((await page.json()) as { repositories: string[] }).repositories).toEqual([all.repositories[0]]);
      expect(page.headers.get('link')).toContain('rel="next"');
    });
  });

  describe('when content is deleted', () => {
    it('deletes a tag (202) and keeps the manifest by digest', async () => {
      const img = await seedImage(base, 'del/tag', 'deltag');
      await putManifest(base, 'del/tag', 'keep', img.bytes, OCI_MANIFEST);
      await putManifest(base, 'del/tag', 'drop', img.bytes, OCI_MANIFEST);
      expect((await fetch(`${base}/v2/del/tag/manifests/drop`, { method: 'DELETE' })).status).toBe(202);
      expect((await fetch(`${base}/v2/del/tag/manifests/drop`)).status).toBe(404);
      expect((await fetch(`${base}/v2/del/tag/manifests/${img.digest}`)).status).toBe(200);
      expect(((await (await fetch(`${base}/v2/del/tag/tags/list`)).json()) as { tags: string[] }).tags).toEqual(['keep']);
    });

    it('deletes a manifest by digest (202) with the tags that pointed at it', async () => {
      const img = await seedImage(base, 'del/man', 'delman');
      await putManifest(base, 'del/man', 'latest', img.bytes, OCI_MANIFEST);
      expect((await fetch(`${base}/v2/del/man/manifests/${img.digest}`, { method: 'DELETE' })).status).toBe(202);
      expect((await fetch(`${base}/v2/del/man/manifests/${img.digest}`)).status).toBe(404);
      expect((await fetch(`${base}/v2/del/man/manifests/latest`)).status).toBe(404);
      const again = await fetch(`${base}/v2/del/man/manifests/${img.digest}`, { method: 'DELETE' });
      expect(again.status).toBe(404);
      expect(await errorCode(again)).toBe('MANIFEST_UNKNOWN');
    });

    it('deletes a blob from a repository (202), leaving other repositories that share it intact', async () => {
      const b = blob('shared blob');
      await pushBlob(base, 'del/blob-a', b);
      await pushBlob(base, 'del/blob-b', b);
      expect((await fetch(`${base}/v2/del/blob-a/blobs/${b.digest}`, { method: 'DELETE' })).status).toBe(202);
      expect((await fetch(`${base}/v2/del/blob-a/blobs/${b.digest}`)).status).toBe(404);
      expect((await fetch(`${base}/v2/del/blob-b/blobs/${b.digest}`)).status).toBe(200);
    });
  });

  describe('when the server is read-only', () => {
    it('refuses pushes with 405 UNSUPPORTED and still serves pulls', async () => {
      const img = await seedImage(base, 'ro/repo', 'ro');
      await putManifest(base, 'ro/repo', 'v1', img.bytes, OCI_MANIFEST);
      const ro = await startTestServer({ root: s.root, readOnly: true });
      try {
        const r = await fetch(`${ro.url}/v2/ro/repo/blobs/uploads/`, { method: 'POST' });
        expect(r.status).toBe(405);
        expect(await errorCode(r)).toBe('UNSUPPORTED');
        const d = await fetch(`${ro.url}/v2/ro/repo/manifests/v1`, { method: 'DELETE' });
        expect(d.status).toBe(405);
        const g = await fetch(`${ro.url}/v2/ro/repo/manifests/v1`);
        expect(Buffer.from(await g.arrayBuffer())).toEqual(img.bytes);
      } finally {
        await ro.close();
      }
    });
  });
});

/** The same referrer pushes against both modes of one implementation (STYLE.md convention 9). */
describe.each([
  { referrersApi: true, label: 'on' },
  { referrersApi: false, label: 'off' },
])('airlock serve referrers ($label)', ({ referrersApi }) => {
  let s: TestServer;
  let base: string;
  let subject: { bytes: Buffer; digest: string };
  let sig: Buffer;
  let sbom: Buffer;
  const repo = 'ref/app';
  beforeAll(async () => {
    s = await startTestServer({ referrersApi });
    base = s.url;
    subject = await seedImage(base, repo, 'subject');
    await putManifest(base, repo, 'v1', subject.bytes, OCI_MANIFEST);
    const empty = blob('{}');
    await pushBlob(base, repo, empty);
    const payload = blob('signature payload');
    await pushBlob(base, repo, payload);
    const subjectDesc = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength };
    sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size },
        layers: [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', digest: payload.digest, size: payload.size }],
        subject: subjectDesc,
        annotations: { 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
      }),
    );
    // no artifactType: the listing falls back to config.mediaType
    sbom = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/spdx+json', digest: empty.digest, size: empty.size },
        layers: [{ mediaType: 'application/spdx+json', digest: payload.digest, size: payload.size }],
        subject: subjectDesc,
      }),
    );
  });
  afterAll(async () => {
    await s.dispose();
  });

  it(referrersApi ? 'answers a manifest PUT with a subject with OCI-Subject' : 'stores a manifest with a subject without OCI-Subject', async () => {
    for (const m of [sig, sbom]) {
      const r = await putManifest(base, repo, sha256(m), m, OCI_MANIFEST);
      expect(r.status).toBe(201);
      expect(r.headers.get('oci-subject')).toBe(referrersApi ? subject.digest : null);
      const g = await fetch(`${base}/v2/${repo}/manifests/${sha256(m)}`);
      expect(Buffer.from(await g.arrayBuffer())).toEqual(m);
    }
  });

  if (referrersApi) {
    it('lists the referrers as an OCI index with artifactType and annotations', async () => {
      const r = await fetch(`${base}/v2/${repo}/referrers/${subject.digest}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe(OCI_INDEX);
      const idx = (await r.json()) as { schemaVersion: number; mediaType: string; manifests: unknown[] };
      expect(idx.schemaVersion).toBe(2);
      expect(idx.mediaType).toBe(OCI_INDEX);
      const expected = [
        {
          mediaType: OCI_MANIFEST,
          digest: sha256(sig),
          size: sig.byteLength,
          artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
          annotations: { 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
        },
        { mediaType: OCI_MANIFEST, digest: sha256(sbom), size: sbom.byteLength, artifactType: 'application/spdx+json' },
      ].sort((a, b) => (a.digest < b.digest ? -1 : 1));
      expect(idx.manifests).toEqual(expected);
    });

    it('applies the artifactType filter and says so in OCI-Filters-Applied', async () => {
      const r = await fetch(`${base}/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent('application/spdx+json')}`);
      expect(r.headers.get('oci-filters-applied')).toBe('artifactType');
      const idx = (await r.json()) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests.map((d) => d.digest)).toEqual([sha256(sbom)]);
    });

    it('lists an index that refers to the subject, with the index artifactType', async () => {
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          artifactType: 'application/vnd.example.stand',
          manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(sig), size: sig.byteLength }],
          subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength },
          annotations: { 'org.example.kind': 'index' },
        }),
      );
      const put = await putManifest(base, repo, sha256(index), index, OCI_INDEX);
      expect(put.status).toBe(201);
      expect(put.headers.get('oci-subject')).toBe(subject.digest);
      const idx = (await (await fetch(`${base}/v2/${repo}/referrers/${subject.digest}`)).json()) as { manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }> };
      expect(idx.manifests.find((d) => d.digest === sha256(index))).toEqual({
        mediaType: OCI_INDEX,
        digest: sha256(index),
        size: index.byteLength,
        artifactType: 'application/vnd.example.stand',
        annotations: { 'org.example.kind': 'index' },
      });
      expect((await fetch(`${base}/v2/${repo}/manifests/${sha256(index)}`, { method: 'DELETE' })).status).toBe(202);
    });

    it('answers an empty index for an unknown digest', async () => {
      const r = await fetch(`${base}/v2/${repo}/referrers/${sha256('unknown subject')}`);
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    });

    it('answers 400 DIGEST_INVALID for a malformed digest', async () => {
      const r = await fetch(`${base}/v2/${repo}/referrers/sha256:zz`);
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('DIGEST_INVALID');
    });

    it('accepts a referrer before its subject exists', async () => {
      const ghost = { mediaType: OCI_MANIFEST, digest: sha256('not pushed yet'), size: 14 };
      const m = Buffer.from(JSON.stringify({ ...JSON.parse(sbom.toString()), subject: ghost }));
      const r = await putManifest(base, repo, sha256(m), m, OCI_MANIFEST);
      expect(r.status).toBe(201);
      const idx = (await (await fetch(`${base}/v2/${repo}/referrers/${ghost.digest}`)).json()) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests.map((d) => d.digest)).toEqual([sha256(m)]);
    });

    it('drops a referrer from the listing when its manifest is deleted', async () => {
      expect((await fetch(`${base}/v2/${repo}/manifests/${sha256(sbom)}`, { method: 'DELETE' })).status).toBe(202);
      const idx = (await (await fetch(`${base}/v2/${repo}/referrers/${subject.digest}`)).json()) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests.map((d) => d.digest)).toEqual([sha256(sig)]);
    });
  } else {
    it('answers the referrers endpoint with 404 like a pre-1.1 registry', async () => {
      const r = await fetch(`${base}/v2/${repo}/referrers/${subject.digest}`);
      expect(r.status).toBe(404);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    });
  }
});

describe('airlock serve referrers paging', () => {
  let s: TestServer;
  let subject: { bytes: Buffer; digest: string };
  let referrers: string[];
  const repo = 'ref/paged';
  beforeAll(async () => {
    s = await startTestServer({ referrersPageSize: 2 });
    subject = await seedImage(s.url, repo, 'paged');
    await putManifest(s.url, repo, 'v1', subject.bytes, OCI_MANIFEST);
    const desc = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength };
    referrers = [];
    for (let i = 0; i < 5; i++) {
      const m = Buffer.from(JSON.stringify({ ...JSON.parse(subject.bytes.toString()), artifactType: i % 2 ? 'application/odd' : 'application/even', annotations: { n: String(i) }, subject: desc }));
      expect((await putManifest(s.url, repo, sha256(m), m, OCI_MANIFEST)).status).toBe(201);
      referrers.push(sha256(m));
    }
    referrers.sort();
  });
  afterAll(async () => {
    await s.dispose();
  });

  describe('when the listing is longer than a page', () => {
    it('pages with a Link header until every referrer has been listed once', async () => {
      const seen: string[] = [];
      let url: URL | undefined = new URL(`/v2/${repo}/referrers/${subject.digest}`, s.url);
      let pages = 0;
      while (url) {
        const r: Response = await fetch(url);
        const idx = (await r.json()) as { manifests: Array<{ digest: string }> };
        seen.push(...idx.manifests.map((d) => d.digest));
        pages++;
        const link = r.headers.get('link');
        url = link ? new URL(/<([^>]+)>/.exec(link)![1]!, s.url) : undefined;
      }
      expect(pages).toBe(3);
      expect(seen).toEqual(referrers);
    });

    it('keeps the artifactType filter on every page', async () => {
      const first = await fetch(`${s.url}/v2/${repo}/referrers/${subject.digest}?artifactType=application/even`);
      expect(first.headers.get('link')).toContain('artifactType=application%2Feven');
      const idx = (await first.json()) as { manifests: Array<{ artifactType: string }> };
      expect(idx.manifests.map((d) => d.artifactType)).toEqual(['application/even', 'application/even']);
    });

    it('is read whole by the registry client', async () => {
      const client = new RegistryClient({ plainHttp: [s.host], credentials: noCredentials });
      try {
        const list = await client.repository(s.host, repo).referrers({ mediaType: OCI_MANIFEST, digest: subject.digest as Digest, size: subject.bytes.byteLength });
        expect(list.map((d) => d.digest)).toEqual(referrers);
      } finally {
        await client.close();
      }
    });
  });
});
