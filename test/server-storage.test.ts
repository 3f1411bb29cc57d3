/**
 * `airlock serve` storage: content survives a restart, uploads resume across one,
 * concurrent clients do not corrupt anything, and the directory is an OCI image layout.
 */
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blob, OCI_INDEX, OCI_MANIFEST, pushBlob, putManifest, seedImage, sha256, startTestServer, type TestServer } from './server-helpers.js';

describe('airlock serve storage', () => {
  const servers: TestServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.dispose();
  });

  describe('when the server restarts on the same root', () => {
    it('serves the same blobs, manifests, tags and referrers', async () => {
      let s = await startTestServer();
      const img = await seedImage(s.url, 'persist/app', 'persist');
      await putManifest(s.url, 'persist/app', 'v1', img.bytes, OCI_MANIFEST);
      const ref = Buffer.from(
        JSON.stringify({
          ...JSON.parse(img.bytes.toString()),
          artifactType: 'application/vnd.example+json',
          subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.bytes.byteLength },
        }),
      );
      await putManifest(s.url, 'persist/app', sha256(ref), ref, OCI_MANIFEST);
      s = await s.restart();
      servers.push(s);
      const g = await fetch(`${s.url}/v2/persist/app/manifests/v1`);
      expect(Buffer.from(await g.arrayBuffer())).toEqual(img.bytes);
      const l = await fetch(`${s.url}/v2/persist/app/blobs/${img.layer.digest}`);
      expect(Buffer.from(await l.arrayBuffer())).toEqual(img.layer.bytes);
      expect(await (await fetch(`${s.url}/v2/persist/app/tags/list`)).json()).toEqual({ name: 'persist/app', tags: ['v1'] });
      const idx = (await (await fetch(`${s.url}/v2/persist/app/referrers/${img.digest}`)).json()) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests.map((d) => d.digest)).toEqual([sha256(ref)]);
      expect(((await (await fetch(`${s.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories).toEqual(['persist/app']);
    });

    it('resumes a chunked upload started before the restart', async () => {
      let s = await startTestServer();
      const b = blob('first half|second half');
      const start = await fetch(`${s.url}/v2/resume/app/blobs/uploads/`, { method: 'POST' });
      const p1 = await fetch(new URL(start.headers.get('location')!, s.url), { method: 'PATCH', body: b.bytes.subarray(0, 11), headers: { 'content-range': '0-10' } });
      const loc = p1.headers.get('location')!;
      s = await s.restart();
      servers.push(s);
      const st = await fetch(new URL(loc, s.url));
      expect(st.status).toBe(204);
      expect(st.headers.get('range')).toBe('0-10');
      const p2 = await fetch(new URL(loc, s.url), { method: 'PATCH', body: b.bytes.subarray(11), headers: { 'content-range': `11-${b.size - 1}` } });
      expect(p2.status).toBe(202);
      const fin = new URL(p2.headers.get('location')!, s.url);
      fin.searchParams.set('digest', b.digest);
      expect((await fetch(fin, { method: 'PUT' })).status).toBe(201);
      expect(Buffer.from(await (await fetch(`${s.url}/v2/resume/app/blobs/${b.digest}`)).arrayBuffer())).toEqual(b.bytes);
    });
  });

  describe('when a client goes away in the middle of a chunk', () => {
    it('keeps what arrived, reports it, and completes when the client resumes from there', async () => {
      const s = await startTestServer();
      servers.push(s);
      const b = blob(Buffer.alloc(3 * 1024 * 1024, 'abcdefgh'));
      const start = await fetch(`${s.url}/v2/cut/app/blobs/uploads/`, { method: 'POST' });
      const loc = new URL(start.headers.get('location')!, s.url);
      // announce the whole blob, send a third of it, and drop the connection
      await new Promise<void>((resolve) => {
        const req = http.request(loc, { method: 'PATCH', headers: { 'content-length': String(b.size), 'content-range': `0-${b.size - 1}` } });
        req.on('error', () => resolve());
        req.write(b.bytes.subarray(0, 1024 * 1024), () => setImmediate(() => req.destroy()));
        req.on('close', () => resolve());
      });
      // the server notices asynchronously; poll the status until the append has settled
      let received = -1;
      for (let i = 0; i < 200; i++) {
        const st = await fetch(loc);
        expect(st.status).toBe(204);
        const got = Number(/^0-(\d+)$/.exec(st.headers.get('range')!)![1]) + 1;
        if (got === received) break;
        received = got;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(received).toBeGreaterThan(0);
      expect(received).toBeLessThanOrEqual(1024 * 1024);
      const rest = await fetch(loc, { method: 'PATCH', body: b.bytes.subarray(received), headers: { 'content-range': `${received}-${b.size - 1}` } });
      expect(rest.status).toBe(202);
      const fin = new URL(rest.headers.get('location')!, s.url);
      fin.searchParams.set('digest', b.digest);
      expect((await fetch(fin, { method: 'PUT' })).status).toBe(201);
      const g = await fetch(`${s.url}/v2/cut/app/blobs/${b.digest}`);
      expect(sha256(Buffer.from(await g.arrayBuffer()))).toBe(b.digest);
      expect(s.logs).toContainEqual(expect.stringMatching(/ PATCH \/v2\/cut\/app\/blobs\/uploads\/\S+ - \(client went away\) \d+ms$/));
    });
  });

  describe('when a crash left temp files behind', () => {
    it('removes old temp files at start and keeps fresh ones another process may be writing', async () => {
      let s = await startTestServer();
      const old = path.join(s.root, 'tmp', 'left-by-a-crash');
      const fresh = path.join(s.root, 'tmp', 'being-written');
      await fs.writeFile(old, 'x');
      await fs.writeFile(fresh, 'y');
      const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await fs.utimes(old, twoHoursAgo, twoHoursAgo);
      s = await s.restart();
      servers.push(s);
      expect(await fs.readdir(path.join(s.root, 'tmp'))).toEqual(['being-written']);
    });
  });

  describe('when clients push concurrently', () => {
    it('stores one intact copy of a blob pushed by many clients at once', async () => {
      const s = await startTestServer();
      servers.push(s);
      const b = blob(Buffer.alloc(256 * 1024, 7));
      const results = await Promise.all(Array.from({ length: 12 }, () => pushBlob(s.url, 'conc/blob', b)));
      expect(results.map((r) => r.status)).toEqual(Array(12).fill(201));
      const g = await fetch(`${s.url}/v2/conc/blob/blobs/${b.digest}`);
      expect(sha256(Buffer.from(await g.arrayBuffer()))).toBe(b.digest);
      expect(await fs.readdir(path.join(s.root, 'uploads'))).toEqual([]);
      expect(await fs.readdir(path.join(s.root, 'tmp'))).toEqual([]);
    });

    it('leaves a tag pushed by many clients at once pointing at one complete manifest', async () => {
      const s = await startTestServer();
      servers.push(s);
      const imgs = await Promise.all(Array.from({ length: 8 }, (_, i) => seedImage(s.url, 'conc/tag', `writer-${i}`)));
      const results = await Promise.all(imgs.map((img) => putManifest(s.url, 'conc/tag', 'latest', img.bytes, OCI_MANIFEST)));
      expect(results.map((r) => r.status)).toEqual(Array(8).fill(201));
      const g = await fetch(`${s.url}/v2/conc/tag/manifests/latest`);
      const bytes = Buffer.from(await g.arrayBuffer());
      expect(imgs.map((i) => i.digest)).toContain(sha256(bytes));
      expect(g.headers.get('docker-content-digest')).toBe(sha256(bytes));
    });

    it('lists every referrer when many are pushed for one subject at once', async () => {
      const s = await startTestServer();
      servers.push(s);
      const img = await seedImage(s.url, 'conc/ref', 'subject');
      await putManifest(s.url, 'conc/ref', 'v1', img.bytes, OCI_MANIFEST);
      const subject = { mediaType: OCI_MANIFEST, digest: img.digest, size: img.bytes.byteLength };
      const refs = Array.from({ length: 10 }, (_, i) =>
        Buffer.from(JSON.stringify({ ...JSON.parse(img.bytes.toString()), artifactType: `application/vnd.example.${i}`, subject })),
      );
      const results = await Promise.all(refs.map((m) => putManifest(s.url, 'conc/ref', sha256(m), m, OCI_MANIFEST)));
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(201));
      const idx = (await (await fetch(`${s.url}/v2/conc/ref/referrers/${img.digest}`)).json()) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests.map((d) => d.digest).sort()).toEqual(refs.map((m) => sha256(m)).sort());
    });
  });

  describe('when the storage directory is read as an OCI image layout', () => {
    it('has oci-layout, index.json and content-addressed blobs whose names are their digests', async () => {
      const s = await startTestServer();
      servers.push(s);
      const img = await seedImage(s.url, 'layout/app', 'layout');
      await putManifest(s.url, 'layout/app', 'v1', img.bytes, OCI_MANIFEST);
      expect(JSON.parse(await fs.readFile(path.join(s.root, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
      expect(JSON.parse(await fs.readFile(path.join(s.root, 'index.json'), 'utf8'))).toMatchObject({ schemaVersion: 2, mediaType: OCI_INDEX });
      const names = await fs.readdir(path.join(s.root, 'blobs', 'sha256'));
      expect(names.sort()).toEqual([img.config.digest, img.layer.digest, img.digest].map((d) => d.slice(7)).sort());
      for (const n of names) expect(sha256(await fs.readFile(path.join(s.root, 'blobs', 'sha256', n)))).toBe(`sha256:${n}`);
    });
  });
});
