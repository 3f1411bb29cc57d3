/**
 * `airlock serve --archive`: an airlock archive (OCI image layout in a tar) served
 * read-only by seeking, with repositories, tags and referrers taken from index.json.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { ArchiveBackend, type RunningServer, startServer } from '../src/server/index.js';
import { errorCode, OCI_INDEX, OCI_MANIFEST, sha256 } from './server-helpers.js';

interface Built {
  file: string;
  image: Buffer;
  layer: Buffer;
  referrer: Buffer;
  sig: Buffer;
  plain: Buffer;
}

/** An archive the way `airlock pack` lays one out: images, a referrer and a cosign tag, annotated. */
async function writeArchive(file: string, corruptLayer = false): Promise<Built> {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer): { digest: string; size: number } => {
    blobs.set(sha256(b), b);
    return { digest: sha256(b), size: b.byteLength };
  };
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const layer = Buffer.from('layer bytes '.repeat(200));
  const image = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...put(layer) }],
    }),
  );
  const imageDesc = { mediaType: OCI_MANIFEST, ...put(image) };
  const empty = Buffer.from('{}');
  const referrer = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', ...put(empty) },
      layers: [{ mediaType: 'application/spdx+json', ...put(Buffer.from('{"spdxVersion":"SPDX-2.3"}')) }],
      subject: imageDesc,
      annotations: { 'org.example': 'sbom' },
    }),
  );
  const sig = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(Buffer.from('{"sig":1}')) },
      layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...put(Buffer.from('{"critical":{}}')) }],
    }),
  );
  const plain = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(Buffer.from('{"plain":1}')) },
      layers: [],
    }),
  );
  const sigTag = `sha256-${imageDesc.digest.slice(7)}.sig`;
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      {
        ...imageDesc,
        annotations: {
          'org.opencontainers.image.ref.name': 'quay.io/org/app:1.0',
          'dev.airlock.kind': 'image',
          'dev.airlock.repository': 'quay.io/org/app',
        },
      },
      {
        mediaType: OCI_MANIFEST,
        ...put(referrer),
        artifactType: 'application/spdx+json',
        annotations: { 'dev.airlock.kind': 'referrer', 'dev.airlock.subject': imageDesc.digest, 'dev.airlock.repository': 'quay.io/org/app' },
      },
      {
        mediaType: OCI_MANIFEST,
        ...put(sig),
        annotations: {
          'dev.airlock.kind': 'cosign-tag',
          'dev.airlock.subject': imageDesc.digest,
          'dev.airlock.repository': 'quay.io/org/app',
          'dev.airlock.tag': sigTag,
          'org.opencontainers.image.ref.name': `quay.io/org/app:${sigTag}`,
        },
      },
      { mediaType: OCI_MANIFEST, ...put(plain), annotations: { 'org.opencontainers.image.ref.name': 'plain' } },
    ],
  };
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const ended = new Promise<void>((resolve) => {
    p.on('end', () => resolve());
  });
  const entry = (name: string, body: Buffer): void => {
    p.entry({ name, mtime: new Date(0), mode: 0o644, uid: 0, gid: 0 }, body);
  };
  entry('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  for (const [d, b] of blobs) {
    const body = corruptLayer && b.equals(layer) ? Buffer.from(b.toString().replace('layer', 'LAYER')) : b;
    entry(`blobs/sha256/${d.slice(7)}`, body);
  }
  entry('index.json', Buffer.from(JSON.stringify(index)));
  p.finalize();
  await ended;
  await fs.writeFile(file, Buffer.concat(chunks));
  return { file, image, layer, referrer, sig, plain };
}

describe('airlock serve --archive', () => {
  let dir: string;
  let built: Built;
  let s: RunningServer;
  let base: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-archive-'));
    built = await writeArchive(path.join(dir, 'images.tar'));
    s = await startServer({ archive: built.file, listen: '127.0.0.1:0', readOnly: true });
    base = s.url;
  });
  afterAll(async () => {
    await s.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('when a client pulls', () => {
    it('lists the repositories and tags named in index.json, without the source registry host', async () => {
      expect(await (await fetch(`${base}/v2/_catalog`)).json()).toEqual({ repositories: ['archive', 'org/app'] });
      const tags = (await (await fetch(`${base}/v2/org/app/tags/list`)).json()) as { tags: string[] };
      expect(tags.tags).toEqual(['1.0', `sha256-${sha256(built.image).slice(7)}.sig`]);
      expect(((await (await fetch(`${base}/v2/archive/tags/list`)).json()) as { tags: string[] }).tags).toEqual(['plain']);
    });

    it('serves the exact manifest bytes by tag and digest, and blobs whole or by range', async () => {
      const g = await fetch(`${base}/v2/org/app/manifests/1.0`);
      expect(g.headers.get('content-type')).toBe(OCI_MANIFEST);
      expect(g.headers.get('docker-content-digest')).toBe(sha256(built.image));
      expect(Buffer.from(await g.arrayBuffer())).toEqual(built.image);
      const l = await fetch(`${base}/v2/org/app/blobs/${sha256(built.layer)}`);
      expect(Buffer.from(await l.arrayBuffer())).toEqual(built.layer);
      const r = await fetch(`${base}/v2/org/app/blobs/${sha256(built.layer)}`, { headers: { range: 'bytes=12-23' } });
      expect(r.status).toBe(206);
      expect(await r.text()).toBe(built.layer.subarray(12, 24).toString());
      const none = await fetch(`${base}/v2/archive/blobs/${sha256(built.layer)}`);
      expect(none.status).toBe(404);
      expect(await errorCode(none)).toBe('BLOB_UNKNOWN');
    });

    it('lists the archive referrers through the referrers API', async () => {
      const idx = await (await fetch(`${base}/v2/org/app/referrers/${sha256(built.image)}`)).json();
      expect(idx).toEqual({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: sha256(built.referrer), size: built.referrer.byteLength, artifactType: 'application/spdx+json', annotations: { 'org.example': 'sbom' } },
        ],
      });
    });

    it('refuses writes with 405 UNSUPPORTED', async () => {
      const r = await fetch(`${base}/v2/org/app/blobs/uploads/`, { method: 'POST' });
      expect(r.status).toBe(405);
      expect(await errorCode(r)).toBe('UNSUPPORTED');
      const d = await fetch(`${base}/v2/org/app/manifests/1.0`, { method: 'DELETE' });
      expect(d.status).toBe(405);
    });

    it('lets skopeo copy the image out byte-identical', async () => {
      const out = path.join(dir, 'out');
      await promisify(execFile)('skopeo', ['copy', '--preserve-digests', '--src-tls-verify=false', `docker://${s.host}/org/app:1.0`, `oci:${out}:1.0`], {
        env: { ...process.env, TMPDIR: dir },
      });
      const idx = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests[0]!.digest).toBe(sha256(built.image));
      expect(await fs.readFile(path.join(out, 'blobs', 'sha256', sha256(built.layer).slice(7)))).toEqual(built.layer);
    });
  });

  describe('when a blob in the archive was altered', () => {
    it('cuts the response instead of serving bytes that do not match the digest', async () => {
      const bad = await writeArchive(path.join(dir, 'bad.tar'), true);
      const backend = await ArchiveBackend.open(bad.file);
      const b = await startServer({ backend, listen: '127.0.0.1:0' });
      try {
        // the body is cut short (here before the headers, the blob being one chunk)
        await expect(fetch(`${b.url}/v2/org/app/blobs/${sha256(bad.layer)}`).then((r) => r.arrayBuffer())).rejects.toThrow();
        // the manifests, which are intact, are still served
        expect((await fetch(`${b.url}/v2/org/app/manifests/1.0`)).status).toBe(200);
      } finally {
        await b.close();
      }
    });
  });

  describe('when run as a command', () => {
    it('starts read-only on the archive and says so', async () => {
      const out = new PassThrough();
      const err = new PassThrough();
      let errText = '';
      err.on('data', (c: Buffer) => (errText += c.toString()));
      const ac = new AbortController();
      const done = main(['serve', '--archive', built.file, '--listen', '127.0.0.1:0'], { stdout: out, stderr: err, env: {}, cwd: process.cwd(), isTTY: false, signal: ac.signal });
      const url = await new Promise<string>((resolve) => out.once('data', (c: Buffer) => resolve(c.toString().trim())));
      const g = await fetch(`${url}/v2/org/app/manifests/1.0`);
      expect(Buffer.from(await g.arrayBuffer())).toEqual(built.image);
      ac.abort();
      expect(await done).toBe(0);
      expect(errText).toContain(`(archive ${built.file}, read-only, referrers API on)`);
    });

    it('exits 2 when given both --root and --archive', async () => {
      const code = await main(['serve', '--archive', built.file, '--root', dir], { stdout: new PassThrough(), stderr: new PassThrough(), env: {}, cwd: process.cwd(), isTTY: false });
      expect(code).toBe(2);
    });
  });
});
