import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readAll } from '../src/content/read.js';
import { isAirlockError } from '../src/errors.js';
import { digestOf, type Digest } from '../src/oci/digest.js';
import type { Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { ArchiveReader, verifySidecar } from '../src/layout/reader.js';
import { ArchiveWriter } from '../src/layout/writer.js';
import { ioError } from '../src/layout/format.js';

const run = promisify(execFile);

// ---- a small real image, made by hand ----

/** One ustar header block for a regular file (enough to make a layer tarball). */
function fileHeader(name: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write('        ', 148);
  b.write('0', 156);
  b.write('ustar\0', 257);
  b.write('00', 263);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

function layerTar(files: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, text] of Object.entries(files)) {
    const body = Buffer.from(text);
    parts.push(fileHeader(name, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}

function blob(mediaType: string, bytes: Buffer): Blob {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

function smallImage(tag = 'v1'): { blobs: Blob[]; manifest: Blob; index: Buffer; ref: string } {
  const layer = blob(MediaType.OciLayer, layerTar({ 'hello.txt': `hello from airlock ${tag}\n` }));
  const config = blob(
    MediaType.OciConfig,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [layer.desc.digest] },
      }),
    ),
  );
  const manifest = blob(
    MediaType.OciManifest,
    Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.desc, layers: [layer.desc] }),
    ),
  );
  const ref = `quay.io/airlock-test/app:${tag}@${manifest.desc.digest}`;
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          ...manifest.desc,
          annotations: { 'org.opencontainers.image.ref.name': ref, 'dev.airlock.kind': 'image' },
        },
      ],
    }),
  );
  return { blobs: [manifest, config, layer], manifest, index, ref };
}

async function writeImage(file: string, mtime: number, order?: (b: Blob[]) => Blob[]): Promise<{ sha256: string; size: number }> {
  const img = smallImage();
  const w = await ArchiveWriter.create({ path: file, mtime });
  await w.writeHeader(img.index);
  for (const b of order ? order(img.blobs) : img.blobs) await w.addBlob(b.desc, b.bytes);
  return w.finish();
}

/** A deterministic pseudo-random stream of `size` bytes, produced chunk by chunk (never held whole). */
function generated(size: number, onChunk?: () => void): Readable {
  const chunk = 1024 * 1024;
  let i = 0;
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      onChunk?.();
      const n = Math.min(chunk, size - sent);
      const seed = createHash('sha256').update(String(i++)).digest();
      const b = Buffer.alloc(n);
      for (let o = 0; o < n; o += 32) seed.copy(b, o, 0, Math.min(32, n - o));
      sent += n;
      this.push(b);
    },
  });
}

async function digestOfStream(s: Readable): Promise<Digest> {
  const h = createHash('sha256');
  for await (const c of s) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}` as Digest;
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-layout-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('ArchiveWriter', () => {
  describe('when writing a small image and reading it back', () => {
    it('puts oci-layout first, index.json second, then each blob once, byte-identical', async () => {
      const file = path.join(dir, 'a.tar');
      const img = smallImage();
      const w = await ArchiveWriter.create({ path: file, mtime: 1_700_000_000 });
      await w.writeHeader(img.index);
      for (const b of img.blobs) await w.addBlob(b.desc, Readable.from([b.bytes]));
      // a second add of the same digest is a no-op
      await w.addBlob(img.blobs[0]!.desc, img.blobs[0]!.bytes);
      const res = await w.finish();

      expect(res.path).toBe(file);
      const st = await fsp.stat(file);
      expect(st.size).toBe(res.size);
      expect(res.size % 512).toBe(0);
      await expect(fsp.stat(`${file}.partial`)).rejects.toMatchObject({ code: 'ENOENT' });
      const whole = await fsp.readFile(file);
      expect(createHash('sha256').update(whole).digest('hex')).toBe(res.sha256);
      expect(await fsp.readFile(`${file}.sha256`, 'utf8')).toBe(`${res.sha256}  a.tar\n`);
      expect(await verifySidecar(file)).toBe('ok');

      const r = await ArchiveReader.open(file);
      try {
        expect([...r.entries()].map((e) => e.name)).toEqual([
          'oci-layout',
          'index.json',
          ...img.blobs.map((b) => `blobs/sha256/${b.desc.digest.slice(7)}`),
        ]);
        expect(r.layoutVersion).toBe('1.0.0');
        expect(r.indexBytes.equals(img.index)).toBe(true);
        for (const b of img.blobs) {
          expect(await r.exists(b.desc)).toBe(true);
          expect((await readAll(await r.fetch(b.desc), 1 << 20)).equals(b.bytes)).toBe(true);
        }
        expect(await r.resolve(img.ref)).toMatchObject({ digest: img.manifest.desc.digest });
        await r.verifyBlobs();
        await r.verifyGraph();
      } finally {
        await r.close();
      }
    });

    it('writes headers with uid/gid 0, mode 0644, no owner names and the given mtime', async () => {
      const file = path.join(dir, 'h.tar');
      await writeImage(file, 1_234_567_890);
      const bytes = await fsp.readFile(file);
      const first = bytes.subarray(0, 512);
      expect(first.toString('latin1', 0, 10)).toBe('oci-layout');
      expect(first.toString('latin1', 100, 107)).toBe('000644 ');
      expect(first.toString('latin1', 108, 115)).toBe('000000 ');
      expect(first.toString('latin1', 116, 123)).toBe('000000 ');
      expect(parseInt(first.toString('latin1', 136, 147), 8)).toBe(1_234_567_890);
      expect(first[156]).toBe(0x30);
      expect(first.subarray(265, 329).every((b) => b === 0)).toBe(true);
      expect(bytes.subarray(512, 512 + 30).toString('utf8')).toBe('{"imageLayoutVersion":"1.0.0"}');
    });
  });

  describe('when a blob is named by a sha512 digest', () => {
    it('writes its 141-character name through a pax path header, with no times, and reads it back', async () => {
      const file = path.join(dir, 's512.tar');
      const bytes = Buffer.from('sha512 content\n');
      const desc: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(bytes, 'sha512'), size: bytes.length };
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })));
      await w.addBlob(desc, bytes);
      await w.finish();
      const raw = await fsp.readFile(file);
      const paxHeader = raw.subarray(512 * 4, 512 * 5);
      expect(String.fromCharCode(paxHeader[156]!)).toBe('x');
      const paxBody = raw.subarray(512 * 5, 512 * 5 + parseInt(paxHeader.toString('latin1', 124, 135), 8)).toString('utf8');
      expect(paxBody).toBe(`151 path=blobs/sha512/${desc.digest.slice(7)}\n`);
      const r = await ArchiveReader.open(file);
      try {
        expect([...r.entries()].map((e) => e.name)).toContain(`blobs/sha512/${desc.digest.slice(7)}`);
        expect((await readAll(await r.fetch(desc), 1024)).equals(bytes)).toBe(true);
        await r.verifyBlobs();
      } finally {
        await r.close();
      }
    });
  });

  describe('when GNU tar re-packs an extracted archive', () => {
    it('the reader accepts its ./ names, directory entries and GNU headers', async () => {
      const file = path.join(dir, 'ours.tar');
      const img = smallImage();
      await writeImage(file, 1_700_000_000);
      const x = path.join(dir, 'x');
      await fsp.mkdir(x);
      await run('tar', ['-xf', file, '-C', x]);
      const gnu = path.join(dir, 'gnu.tar');
      await run('tar', ['--format=gnu', '-cf', gnu, '-C', x, '.']);
      const r = await ArchiveReader.open(gnu);
      try {
        expect([...r.entries()].map((e) => e.name).sort()).toEqual(
          ['index.json', 'oci-layout', ...img.blobs.map((b) => `blobs/sha256/${b.desc.digest.slice(7)}`)].sort(),
        );
        expect(await r.resolve(img.ref)).toMatchObject({ digest: img.manifest.desc.digest });
        await r.verifyGraph();
        await r.verifyBlobs();
      } finally {
        await r.close();
      }
    });
  });

  describe('when the same content is written twice with the same mtime', () => {
    it('produces byte-identical archives and sidecars', async () => {
      const a = path.join(dir, 'one', 'x.tar');
      const b = path.join(dir, 'two', 'x.tar');
      await fsp.mkdir(path.dirname(a));
      await fsp.mkdir(path.dirname(b));
      const ra = await writeImage(a, 1_600_000_000);
      const rb = await writeImage(b, 1_600_000_000);
      expect(rb.sha256).toBe(ra.sha256);
      expect((await fsp.readFile(a)).equals(await fsp.readFile(b))).toBe(true);
      expect(await fsp.readFile(`${a}.sha256`, 'utf8')).toBe(await fsp.readFile(`${b}.sha256`, 'utf8'));
    });

    it('takes the mtime from SOURCE_DATE_EPOCH when none is given', async () => {
      const a = path.join(dir, 'sde.tar');
      const saved = process.env.SOURCE_DATE_EPOCH;
      process.env.SOURCE_DATE_EPOCH = '1500000000';
      try {
        const img = smallImage();
        const w = await ArchiveWriter.create({ path: a });
        await w.writeHeader(img.index);
        for (const b of img.blobs) await w.addBlob(b.desc, b.bytes);
        await w.finish();
      } finally {
        if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
        else process.env.SOURCE_DATE_EPOCH = saved;
      }
      const b = path.join(dir, 'explicit.tar');
      await writeImage(b, 1_500_000_000);
      expect((await fsp.readFile(a)).equals(await fsp.readFile(b))).toBe(true);
    });
  });

  describe('when a blob is large', () => {
    it('streams a 64 MiB blob with memory far below its size, and the reader streams it back', async () => {
      const size = 64 * 1024 * 1024;
      const digest = await digestOfStream(generated(size));
      const desc: Descriptor = { mediaType: MediaType.OciLayer, digest, size };
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }));
      const file = path.join(dir, 'big.tar');

      global.gc?.();
      const base = process.memoryUsage().rss;
      let peak = base;
      const sample = (): void => {
        peak = Math.max(peak, process.memoryUsage().rss);
      };
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(index);
      await w.addBlob(desc, generated(size, sample));
      const res = await w.finish();
      // An observation, not a timing: buffering the blob would add at least 64 MiB.
      expect(peak - base).toBeLessThan(size / 2);
      expect(res.size).toBe(512 + 512 + 512 + 512 + 512 + size + 1024);

      const r = await ArchiveReader.open(file);
      try {
        const h = createHash('sha256');
        let rpeak = process.memoryUsage().rss;
        const rbase = rpeak;
        for await (const c of await r.fetch(desc)) {
          h.update(c as Buffer);
          rpeak = Math.max(rpeak, process.memoryUsage().rss);
        }
        expect(`sha256:${h.digest('hex')}`).toBe(digest);
        expect(rpeak - rbase).toBeLessThan(size / 2);
        await r.verifyBlobs();
      } finally {
        await r.close();
      }
    });
  });

  describe('when the archive is abandoned or fails', () => {
    it('abort() leaves nothing at FILE or FILE.partial', async () => {
      const file = path.join(dir, 'ab.tar');
      const img = smallImage();
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(img.index);
      await w.addBlob(img.blobs[1]!.desc, img.blobs[1]!.bytes);
      expect((await fsp.stat(`${file}.partial`)).isFile()).toBe(true);
      await w.abort();
      expect(await fsp.readdir(dir)).toEqual([]);
      await expect(w.addBlob(img.blobs[2]!.desc, img.blobs[2]!.bytes)).rejects.toMatchObject({ code: 'ABORTED' });
    });

    it('a digest mismatch during addBlob aborts the archive', async () => {
      const file = path.join(dir, 'bad.tar');
      const img = smallImage();
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(img.index);
      const layer = img.blobs[2]!;
      const tampered = Buffer.from(layer.bytes);
      tampered[600] = tampered[600]! ^ 0xff;
      const err = await w.addBlob(layer.desc, Readable.from([tampered])).catch((e: unknown) => e);
      expect(isAirlockError(err, 'DIGEST_MISMATCH')).toBe(true);
      expect(String((err as Error).message)).toContain(layer.desc.digest);
      expect(await fsp.readdir(dir)).toEqual([]);
      await expect(w.finish()).rejects.toMatchObject({ code: 'IO' });
      expect(await fsp.readdir(dir)).toEqual([]);
    });

    it('a short blob (size mismatch) aborts the archive', async () => {
      const file = path.join(dir, 'short.tar');
      const img = smallImage();
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(img.index);
      const layer = img.blobs[2]!;
      await expect(w.addBlob(layer.desc, layer.bytes.subarray(0, 100))).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      expect(await fsp.readdir(dir)).toEqual([]);
    });

    it('a source stream that fails half-way aborts the archive with its error', async () => {
      const file = path.join(dir, 'broken.tar');
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })));
      const failing = new Readable({
        read() {
          this.push(Buffer.alloc(4096, 1));
          this.destroy(new Error('connection reset by peer'));
        },
      });
      const d: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(Buffer.alloc(1 << 20)), size: 1 << 20 };
      await expect(w.addBlob(d, failing)).rejects.toThrow(/connection reset/);
      expect(await fsp.readdir(dir)).toEqual([]);
    });

    it('an AbortSignal cancels the write and removes FILE.partial', async () => {
      const file = path.join(dir, 'sig.tar');
      const ac = new AbortController();
      const w = await ArchiveWriter.create({ path: file, mtime: 0, signal: ac.signal });
      await w.writeHeader(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })));
      const size = 16 * 1024 * 1024;
      let chunks = 0;
      const stream = generated(size, () => {
        if (++chunks === 3) ac.abort();
      });
      const d: Descriptor = { mediaType: MediaType.OciLayer, digest: await digestOfStream(generated(size)), size };
      await expect(w.addBlob(d, stream)).rejects.toMatchObject({ code: 'ABORTED' });
      expect(await fsp.readdir(dir)).toEqual([]);
    });

    it('refuses to finish when a blob listed in index.json was never added', async () => {
      const file = path.join(dir, 'incomplete.tar');
      const img = smallImage();
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await w.writeHeader(img.index);
      await w.addBlob(img.manifest.desc, img.manifest.bytes);
      await w.addBlob(img.blobs[1]!.desc, img.blobs[1]!.bytes);
      await expect(w.finish()).rejects.toThrow(new RegExp(img.blobs[2]!.desc.digest));
      expect(await fsp.readdir(dir)).toEqual([]);
    });

    it('refuses a second writer on the same FILE while the first is open', async () => {
      const file = path.join(dir, 'busy.tar');
      const w = await ArchiveWriter.create({ path: file, mtime: 0 });
      await expect(ArchiveWriter.create({ path: file, mtime: 0 })).rejects.toMatchObject({ code: 'IO' });
      await w.abort();
      expect(await fsp.readdir(dir)).toEqual([]);
    });

    it('maps a full disk (a real ENOSPC from /dev/full) to IO naming the path', async () => {
      const e = await fsp.writeFile('/dev/full', Buffer.alloc(1)).catch((x: unknown) => x);
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      const mapped = ioError(e, '/data/out.tar.partial', 'writing the archive');
      expect(mapped.code).toBe('IO');
      expect(mapped.message).toContain('/data/out.tar.partial');
      expect(mapped.message).toContain('no space left on device');
    });
  });

  describe('when skopeo reads the archive', () => {
    it('skopeo inspect oci-archive:FILE sees the image, by ref.name too', async () => {
      const file = path.join(dir, 'img.tar');
      const img = smallImage();
      await writeImage(file, 1_700_000_000);
      const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-skopeo-'));
      try {
        const { stdout } = await run('skopeo', ['--tmpdir', tmp, 'inspect', '--raw', `oci-archive:${file}`]);
        expect(Buffer.from(stdout).equals(img.manifest.bytes)).toBe(true);
        const { stdout: cfg } = await run('skopeo', ['--tmpdir', tmp, 'inspect', '--config', '--raw', `oci-archive:${file}:${img.ref}`]);
        expect(JSON.parse(cfg)).toMatchObject({ architecture: 'amd64', os: 'linux' });
      } finally {
        await fsp.rm(tmp, { recursive: true, force: true });
      }
    });

    it('an archive skopeo wrote from ours (directory entries, recompressed layer) opens in the reader', async () => {
      const file = path.join(dir, 'ours.tar');
      const img = smallImage();
      await writeImage(file, 1_700_000_000);
      const theirs = path.join(dir, 'theirs.tar');
      const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-skopeo-'));
      try {
        await run('skopeo', ['--tmpdir', tmp, 'copy', '-q', `oci-archive:${file}`, `oci-archive:${theirs}:copied`]);
      } finally {
        await fsp.rm(tmp, { recursive: true, force: true });
      }
      const r = await ArchiveReader.open(theirs);
      try {
        const d = await r.resolve('copied');
        // skopeo gzips uncompressed layers when it writes oci-archive, so the manifest changes;
        // the config (and so the image's identity as diff_ids) does not.
        const m = JSON.parse((await readAll(await r.fetch(d), 1 << 20)).toString()) as { config: Descriptor; layers: Descriptor[] };
        expect(m.config.digest).toBe(img.blobs[1]!.desc.digest);
        expect(m.layers).toHaveLength(1);
        expect(m.layers[0]!.mediaType).toBe(MediaType.OciLayerGzip);
        expect([...r.entries()].map((e) => e.name).sort()).toEqual(
          ['index.json', 'oci-layout', ...[d.digest, m.config.digest, m.layers[0]!.digest].map((x) => `blobs/sha256/${x.slice(7)}`)].sort(),
        );
        await r.verifyBlobs();
        await r.verifyGraph();
      } finally {
        await r.close();
      }
    });
  });
});
