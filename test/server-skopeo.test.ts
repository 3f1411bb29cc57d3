/**
 * An independent client against `airlock serve`: skopeo copies an OCI image layout
 * into the registry and back out, and every manifest and blob comes back byte-identical.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_INDEX, OCI_MANIFEST, sha256, startTestServer, type TestServer } from './server-helpers.js';

const run = promisify(execFile);

async function tarOf(name: string, content: string): Promise<Buffer> {
  const p = pack();
  p.entry({ name, mtime: new Date(0), mode: 0o644, uid: 0, gid: 0 }, content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Write an OCI image layout by hand: a two-platform index tagged `multi`. */
async function writeLayout(dir: string): Promise<{ indexBytes: Buffer; manifests: Buffer[] }> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (bytes: Buffer): Promise<string> => {
    const d = sha256(bytes);
    await fs.writeFile(path.join(dir, 'blobs', 'sha256', d.slice(7)), bytes);
    return d;
  };
  const manifests: Buffer[] = [];
  const entries = [];
  for (const arch of ['amd64', 'arm64']) {
    const layer = await tarOf(`hello-${arch}.txt`, `hello from ${arch}\n`);
    const config = Buffer.from(
      JSON.stringify({ architecture: arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(layer)] }, history: [{ created_by: 'test' }] }),
    );
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.byteLength },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: await put(layer), size: layer.byteLength }],
        annotations: { 'org.example.arch': arch },
      }),
    );
    manifests.push(m);
    entries.push({ mediaType: OCI_MANIFEST, digest: await put(m), size: m.byteLength, platform: { architecture: arch, os: 'linux' } });
  }
  const indexBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
  const indexDigest = await put(indexBytes);
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: OCI_INDEX, digest: indexDigest, size: indexBytes.byteLength, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }],
    }),
  );
  return { indexBytes, manifests };
}

async function blobsOf(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const n of await fs.readdir(path.join(dir, 'blobs', 'sha256'))) {
    out.set(n, sha256(await fs.readFile(path.join(dir, 'blobs', 'sha256', n))));
  }
  return out;
}

describe('airlock serve with skopeo', () => {
  let s: TestServer;
  let work: string;
  beforeAll(async () => {
    s = await startTestServer();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-skopeo-'));
  });
  afterAll(async () => {
    await s.dispose();
    await fs.rm(work, { recursive: true, force: true });
  });

  describe('when an index is copied in and back out', () => {
    it('returns byte-identical manifests and blobs', async () => {
      const src = path.join(work, 'src');
      const back = path.join(work, 'back');
      const { indexBytes, manifests } = await writeLayout(src);
      const opts = { env: { ...process.env, TMPDIR: work }, maxBuffer: 16 * 1024 * 1024 };
      await run('skopeo', ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${src}:multi`, `docker://${s.host}/skopeo/multi:v1`], opts);

      // what skopeo pushed is what was in the layout
      const g = await fetch(`${s.url}/v2/skopeo/multi/manifests/v1`, { headers: { accept: OCI_INDEX } });
      expect(Buffer.from(await g.arrayBuffer())).toEqual(indexBytes);
      for (const m of manifests) {
        const r = await fetch(`${s.url}/v2/skopeo/multi/manifests/${sha256(m)}`);
        expect(Buffer.from(await r.arrayBuffer())).toEqual(m);
      }

      await run('skopeo', ['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${s.host}/skopeo/multi:v1`, `oci:${back}:multi`], opts);
      const srcIndex = JSON.parse(await fs.readFile(path.join(src, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      const backIndex = JSON.parse(await fs.readFile(path.join(back, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(backIndex.manifests[0]!.digest).toBe(srcIndex.manifests[0]!.digest);
      const a = await blobsOf(src);
      const b = await blobsOf(back);
      expect(new Map([...b].sort())).toEqual(new Map([...a].sort()));
      for (const [name, digest] of b) expect(digest).toBe(`sha256:${name}`);
    });
  });
});
