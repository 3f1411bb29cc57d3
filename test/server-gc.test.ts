/**
 * `airlock serve gc`: blobs that nothing references go; blobs of manifests, index
 * children, referrers and in-progress uploads stay; and it never runs beside a writable
 * server on the same storage (the root's writer lock).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { isAirlockError } from '../src/errors.js';
import { collectGarbage } from '../src/server/gc.js';
import { blob, type Blob, OCI_INDEX, OCI_MANIFEST, pushBlob, putManifest, seedImage, sha256, startTestServer, type TestServer } from './server-helpers.js';

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await main(args, { stdout: out, stderr: err, env: {}, cwd: process.cwd(), isTTY: false });
  return { code, stdout, stderr };
}

const blobFile = (root: string, digest: string): string => path.join(root, 'blobs', 'sha256', digest.slice(7));
const present = async (root: string, digest: string): Promise<boolean> =>
  fs.access(blobFile(root, digest)).then(
    () => true,
    () => false,
  );

/** Set every blob file's mtime back, so that only references (not the grace period) keep them. */
async function ageBlobs(root: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  for (const n of await fs.readdir(path.join(root, 'blobs', 'sha256'))) await fs.utimes(path.join(root, 'blobs', 'sha256', n), t, t);
}

describe('airlock serve gc', () => {
  let s: TestServer;
  let root: string;
  const repo = 'gc/app';
  let tagged: Awaited<ReturnType<typeof seedImage>>;
  let child: Awaited<ReturnType<typeof seedImage>>;
  let index: Buffer;
  let referrer: Buffer;
  let payload: Blob;
  let orphan: Blob;
  let deleted: Awaited<ReturnType<typeof seedImage>>;
  let upload: { url: string; first: Buffer; rest: Buffer };

  beforeAll(async () => {
    s = await startTestServer();
    root = s.root;
    tagged = await seedImage(s.url, repo, 'tagged');
    expect((await putManifest(s.url, repo, 'v1', tagged.bytes, OCI_MANIFEST)).status).toBe(201);
    // an index whose child is pushed by digest only (no tag of its own)
    child = await seedImage(s.url, repo, 'child');
    expect((await putManifest(s.url, repo, child.digest, child.bytes, OCI_MANIFEST)).status).toBe(201);
    index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: child.bytes.byteLength }] }));
    expect((await putManifest(s.url, repo, 'multi', index, OCI_INDEX)).status).toBe(201);
    // a referrer (untagged, by digest) with a layer nothing else uses
    payload = blob('signature payload only the referrer uses');
    const empty = blob('{}');
    await pushBlob(s.url, repo, payload);
    await pushBlob(s.url, repo, empty);
    referrer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sig',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size },
        layers: [{ mediaType: 'application/vnd.example.sig', digest: payload.digest, size: payload.size }],
        subject: { mediaType: OCI_MANIFEST, digest: tagged.digest, size: tagged.bytes.byteLength },
      }),
    );
    expect((await putManifest(s.url, repo, sha256(referrer), referrer, OCI_MANIFEST)).status).toBe(201);
    // a blob uploaded and never used, and an image deleted after its push
    orphan = blob('uploaded, referenced by nothing');
    await pushBlob(s.url, repo, orphan);
    deleted = await seedImage(s.url, repo, 'deleted');
    expect((await putManifest(s.url, repo, 'old', deleted.bytes, OCI_MANIFEST)).status).toBe(201);
    expect((await fetch(`${s.url}/v2/${repo}/manifests/${deleted.digest}`, { method: 'DELETE' })).status).toBe(202);
    // an upload in progress
    const start = await fetch(`${s.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    upload = { url: new URL(start.headers.get('location')!, s.url).pathname, first: Buffer.from('first half, '), rest: Buffer.from('second half') };
    expect((await fetch(new URL(upload.url, s.url), { method: 'PATCH', body: upload.first })).status).toBe(202);
    await s.close();
    await ageBlobs(root, 2 * 60 * 60 * 1000);
  });

  afterAll(async () => {
    await s.dispose();
  });

  describe('while a writable server holds the storage', () => {
    it('refuses with exit 2 and one line, and removes nothing', async () => {
      const running = await startTestServer({ root });
      try {
        const r = await cli(['serve', 'gc', '--root', root]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/^airlock: .* is in use by airlock serve \(pid \d+ on .*\): stop it first \(garbage collection must not race a push\)/);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(await present(root, orphan.digest)).toBe(true);
      } finally {
        await running.close();
      }
    });
  });

  describe('when run with --dry-run', () => {
    it('lists what would go and removes nothing', async () => {
      const r = await cli(['serve', 'gc', '--root', root, '--dry-run']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`would remove ${orphan.digest} ${orphan.size}\n`);
      expect(await present(root, orphan.digest)).toBe(true);
    });
  });

  describe('when nothing holds the storage', () => {
    let removed: string[];
    beforeAll(async () => {
      const r = await cli(['serve', 'gc', '--root', root]);
      expect(r.stderr).not.toMatch(/airlock: /);
      expect(r.code).toBe(0);
      removed = r.stdout.trim().split('\n').map((l) => l.split(' ')[1]!);
    });

    it('removes the blobs that nothing references: an unused upload, and what a deleted manifest left', async () => {
      expect(removed.sort()).toEqual([orphan.digest, deleted.digest, deleted.config.digest, deleted.layer.digest].sort());
      for (const d of removed) expect(await present(root, d)).toBe(false);
      // and the repository's links to them
      await expect(fs.access(path.join(root, 'repositories', 'gc', 'app', '_blobs', 'sha256', orphan.digest.slice(7)))).rejects.toThrow();
    });

    it('keeps what a tag, an index child and a referrer reference, and an upload in progress, all served as before', async () => {
      const again = await startTestServer({ root });
      try {
        const get = async (p: string): Promise<Buffer> => {
          const r = await fetch(`${again.url}${p}`);
          expect(r.status, p).toBe(200);
          return Buffer.from(await r.arrayBuffer());
        };
        expect(await get(`/v2/${repo}/manifests/v1`)).toEqual(tagged.bytes);
        expect(await get(`/v2/${repo}/manifests/multi`)).toEqual(index);
        expect(await get(`/v2/${repo}/manifests/${child.digest}`)).toEqual(child.bytes);
        expect(await get(`/v2/${repo}/manifests/${sha256(referrer)}`)).toEqual(referrer);
        for (const b of [tagged.config, tagged.layer, child.config, child.layer, payload]) expect(await get(`/v2/${repo}/blobs/${b.digest}`)).toEqual(b.bytes);
        const refs = (await (await fetch(`${again.url}/v2/${repo}/referrers/${tagged.digest}`)).json()) as { manifests: Array<{ digest: string }> };
        expect(refs.manifests.map((d) => d.digest)).toEqual([sha256(referrer)]);
        expect((await fetch(`${again.url}/v2/${repo}/blobs/${orphan.digest}`, { method: 'HEAD' })).status).toBe(404);
        // the upload goes on where it was
        const whole = blob(Buffer.concat([upload.first, upload.rest]));
        const fin = new URL(upload.url, again.url);
        fin.searchParams.set('digest', whole.digest);
        expect((await fetch(fin, { method: 'PUT', body: upload.rest })).status).toBe(201);
        expect(await get(`/v2/${repo}/blobs/${whole.digest}`)).toEqual(whole.bytes);
      } finally {
        await again.close();
      }
    });
  });

  describe('when unreferenced blobs are younger than --grace', () => {
    it('keeps them (a push interrupted between layers and manifest), and removes them with --grace 0s', async () => {
      const srv = await startTestServer();
      const young = blob('pushed a minute ago, manifest still to come');
      await pushBlob(srv.url, 'gc/young', young);
      await srv.close();
      try {
        expect((await collectGarbage(srv.root)).removed).toBe(0);
        expect(await present(srv.root, young.digest)).toBe(true);
        const r = await collectGarbage(srv.root, { graceMs: 0 });
        expect(r.removed).toBe(1);
        expect(await present(srv.root, young.digest)).toBe(false);
      } finally {
        await srv.dispose();
      }
    });
  });
});

describe('the storage writer lock', () => {
  let root: string;
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-lock-'));
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('refuses a second writable server on one storage directory, and admits a read-only one', async () => {
    const first = await startTestServer({ root });
    try {
      await expect(startTestServer({ root })).rejects.toSatisfy((e: unknown) => isAirlockError(e, 'USAGE') && /one writable server per storage directory; use --read-only/.test((e as Error).message));
      const ro = await startTestServer({ root, readOnly: true });
      await ro.close();
    } finally {
      await first.close();
    }
  });

  it('refuses to start a server while gc runs, and takes over the lock of a process that died', async () => {
    await fs.writeFile(path.join(root, 'serve.lock'), JSON.stringify({ pid: process.pid, host: os.hostname(), holder: 'gc', since: 'now' }));
    await expect(startTestServer({ root })).rejects.toSatisfy((e: unknown) => isAirlockError(e, 'USAGE') && /in use by airlock serve gc .*wait for the garbage collection to finish/.test((e as Error).message));
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await fs.writeFile(path.join(root, 'serve.lock'), JSON.stringify({ pid: dead, host: os.hostname(), holder: 'serve', since: 'then' }));
    const s = await startTestServer({ root });
    await s.close();
    await expect(fs.access(path.join(root, 'serve.lock'))).rejects.toThrow();
  });

  it('says what is wrong when gc is pointed at a directory that is not serve storage', async () => {
    const r = await cli(['serve', 'gc', '--root', path.join(root, 'nothing-here')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`airlock: ${path.join(root, 'nothing-here')} is not an airlock serve storage directory (no oci-layout, blobs/ and repositories/); check --root\n`);
    const stray = await cli(['serve', 'gc', '--root', root, '--listen', '127.0.0.1:0']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toBe('airlock: serve gc takes --root, --grace, --upload-max-age and --dry-run only, not --listen\n');
  });
});
