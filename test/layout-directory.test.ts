import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readAll } from '../src/content/read.js';
import { digestOf } from '../src/oci/digest.js';
import type { Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { DirectoryStore } from '../src/layout/directory.js';

const run = promisify(execFile);

function blob(mediaType: string, bytes: Buffer): { desc: Descriptor; bytes: Buffer } {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-dir-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function listBlobs(root: string): Promise<string[]> {
  return (await fsp.readdir(path.join(root, 'blobs', 'sha256')).catch(() => [] as string[])).sort();
}

describe('DirectoryStore', () => {
  describe('when the layout does not exist', () => {
    it('refuses to open it unless asked to create it, then writes oci-layout and an empty index.json', async () => {
      const root = path.join(dir, 'layout');
      await expect(DirectoryStore.open(root)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      const s = await DirectoryStore.open(root, { create: true });
      expect(await fsp.readFile(path.join(root, 'oci-layout'), 'utf8')).toBe('{"imageLayoutVersion":"1.0.0"}');
      expect(JSON.parse(await fsp.readFile(path.join(root, 'index.json'), 'utf8'))).toEqual({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [],
      });
      expect(s.index.manifests).toEqual([]);
    });
  });

  describe('when pushing, tagging and reading', () => {
    it('stores verified blobs, tags them in index.json and skopeo reads the image', async () => {
      const root = path.join(dir, 'layout');
      const s = await DirectoryStore.open(root, { create: true });
      const layer = blob(MediaType.OciLayer, Buffer.alloc(1024, 7));
      const config = blob(
        MediaType.OciConfig,
        Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.desc.digest] } })),
      );
      const manifest = blob(
        MediaType.OciManifest,
        Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.desc, layers: [layer.desc] })),
      );
      await s.push(layer.desc, Readable.from([layer.bytes.subarray(0, 100), layer.bytes.subarray(100)]));
      await s.push(config.desc, config.bytes);
      await s.push(config.desc, config.bytes); // a no-op
      await s.tag(manifest.desc, manifest.bytes, 'v1');

      expect(await listBlobs(root)).toEqual([layer, config, manifest].map((b) => b.desc.digest.slice(7)).sort());
      expect((await readAll(await s.fetch(layer.desc), 4096)).equals(layer.bytes)).toBe(true);
      expect(await s.resolve('v1')).toMatchObject({ digest: manifest.desc.digest });

      const again = await DirectoryStore.open(root);
      expect(await again.resolve('v1')).toMatchObject({ digest: manifest.desc.digest, size: manifest.desc.size });
      // retagging replaces the entry rather than adding a second one
      await again.tag(manifest.desc, manifest.bytes, 'v1');
      expect(again.index.manifests).toHaveLength(1);

      const { stdout } = await run('skopeo', ['inspect', '--config', '--raw', `oci:${root}:v1`]);
      expect(JSON.parse(stdout)).toMatchObject({ architecture: 'arm64' });
    });
  });

  describe('when the content does not match its descriptor', () => {
    it('refuses it and leaves neither a blob nor a temp file behind', async () => {
      const root = path.join(dir, 'layout');
      const s = await DirectoryStore.open(root, { create: true });
      const good = blob(MediaType.OciLayer, Buffer.from('good'));
      await expect(s.push(good.desc, Buffer.from('evil'))).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
      await expect(s.push(good.desc, Buffer.from('good!'))).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      expect(await listBlobs(root)).toEqual([]);
      expect(await fsp.readdir(path.join(root, 'ingest'))).toEqual([]);
      expect(await s.exists(good.desc)).toBe(false);
      await expect(s.fetch(good.desc)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('fetch() of a blob altered on disk errors instead of ending cleanly', async () => {
      const root = path.join(dir, 'layout');
      const s = await DirectoryStore.open(root, { create: true });
      const b = blob(MediaType.OciLayer, Buffer.from('original'));
      await s.push(b.desc, b.bytes);
      await fsp.writeFile(s.blobFile(b.desc), 'tampered');
      await expect(readAll(await s.fetch(b.desc), 1024)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    });
  });
});
