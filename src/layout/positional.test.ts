import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAirlockError } from '../errors.js';
import { digestOf, VerifyingStream, type Digest } from '../oci/digest.js';
import { encodeJson, type Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { ArchiveReader } from './reader.js';
import { ArchiveWriter } from './writer.js';

const LAYER = 'application/vnd.oci.image.layer.v1.tar';

interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}

function blob(bytes: Buffer, alg: 'sha256' | 'sha512' = 'sha256'): Blob {
  return { desc: { mediaType: LAYER, digest: digestOf(bytes, alg), size: bytes.length }, bytes };
}

/** An image whose blobs have awkward sizes: empty, one byte, a block exactly, many chunks, and a sha512 (pax header) one. */
function image(): { blobs: Blob[]; manifest: Blob; index: Buffer } {
  const blobs = [
    blob(Buffer.alloc(0)),
    blob(Buffer.from('x')),
    blob(randomBytes(512)),
    blob(randomBytes(3 * 1024 * 1024 + 7)),
    blob(randomBytes(70_001), 'sha512'),
  ];
  const config = blob(Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'));
  config.desc = { ...config.desc, mediaType: MediaType.OciConfig };
  const mbytes = encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.desc, layers: blobs.map((b) => b.desc) });
  const manifest = { desc: { mediaType: MediaType.OciManifest, digest: digestOf(mbytes), size: mbytes.length }, bytes: mbytes };
  const index = encodeJson({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [manifest.desc] });
  return { blobs: [config, ...blobs].sort((a, b) => a.desc.digest.localeCompare(b.desc.digest)), manifest, index };
}

/** Content as a source would serve it: in small chunks, through a size and digest check. */
function served(b: Blob, bytes = b.bytes): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 10_000) chunks.push(bytes.subarray(i, i + 10_000));
  const v = new VerifyingStream({ digest: b.desc.digest, size: b.desc.size, what: `blob ${b.desc.digest}`, side: 'source' });
  pipeline(Readable.from(chunks), v, () => {});
  return v;
}

const sha256File = async (file: string): Promise<string> => createHash('sha256').update(await fsp.readFile(file)).digest('hex');

describe('ArchiveWriter.addBlobs', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-positional-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  describe('when bodies arrive out of order, several at once', () => {
    it('writes the same bytes as addBlob one at a time, with a correct sidecar, and the reader reads every blob', async () => {
      const im = image();
      const seq = path.join(dir, 'seq.tar');
      const w1 = await ArchiveWriter.create({ path: seq, mtime: 1700000000 });
      await w1.writeHeader(im.index);
      await w1.addBlob(im.manifest.desc, im.manifest.bytes);
      for (const b of im.blobs) await w1.addBlob(b.desc, b.bytes);
      const r1 = await w1.finish();

      const par = path.join(dir, 'par.tar');
      const w2 = await ArchiveWriter.create({ path: par, mtime: 1700000000 });
      await w2.writeHeader(im.index);
      await w2.addBlob(im.manifest.desc, im.manifest.bytes);
      // Release the sources last-first, so later entries are complete before earlier ones.
      const gates = im.blobs.map(() => {
        let open!: () => void;
        const p = new Promise<void>((r) => (open = r));
        return { p, open };
      });
      const started: number[] = [];
      const seen: Digest[] = [];
      const done = w2.addBlobs(
        im.blobs.map((b, i) => ({
          desc: b.desc,
          open: async () => {
            started.push(i);
            if (started.length === im.blobs.length) for (let j = gates.length - 1; j >= 0; j--) gates[j]!.open();
            await gates[i]!.p;
            return served(b);
          },
        })),
        { concurrency: im.blobs.length, onBlob: (d) => seen.push(d.digest) },
      );
      await done;
      const r2 = await w2.finish();

      // Compared with Buffer.equals: a deep equality over megabytes is very slow.
      expect((await fsp.readFile(par)).equals(await fsp.readFile(seq))).toBe(true);
      expect(r2.sha256).toBe(r1.sha256);
      expect(r2.sha256).toBe(await sha256File(par));
      expect(r2.size).toBe((await fsp.stat(par)).size);
      expect(await fsp.readFile(`${par}.sha256`, 'utf8')).toBe(`${r2.sha256}  par.tar\n`);
      expect(new Set(seen)).toEqual(new Set(im.blobs.map((b) => b.desc.digest)));

      const reader = await ArchiveReader.open(par);
      try {
        for (const b of im.blobs) {
          const chunks: Buffer[] = [];
          for await (const c of await reader.fetch(b.desc)) chunks.push(c as Buffer);
          expect(Buffer.concat(chunks).equals(b.bytes)).toBe(true);
        }
      } finally {
        await reader.close();
      }
    });
  });

  describe('when there is nothing left to add', () => {
    it('ends the archive exactly as finish() alone would', async () => {
      const im = image();
      const a = path.join(dir, 'a.tar');
      const b = path.join(dir, 'b.tar');
      for (const [file, positional] of [[a, false], [b, true]] as const) {
        const w = await ArchiveWriter.create({ path: file, mtime: 1700000000, requireComplete: false });
        await w.writeHeader(im.index);
        await w.addBlob(im.manifest.desc, im.manifest.bytes);
        if (positional) await w.addBlobs([]);
        await w.finish();
      }
      expect((await fsp.readFile(b)).equals(await fsp.readFile(a))).toBe(true);
      expect(await fsp.readFile(`${b}.sha256`, 'utf8')).toBe((await fsp.readFile(`${a}.sha256`, 'utf8')).replace('a.tar', 'b.tar'));
    });
  });

  describe('when the signal aborts while bodies are streaming', () => {
    it('fails with ABORTED, stops the sources and leaves nothing behind', async () => {
      const im = image();
      const out = path.join(dir, 'cancelled.tar');
      const controller = new AbortController();
      const w = await ArchiveWriter.create({ path: out, mtime: 1700000000, signal: controller.signal });
      await w.writeHeader(im.index);
      await w.addBlob(im.manifest.desc, im.manifest.bytes);
      const sources: Readable[] = [];
      const err = await w
        .addBlobs(
          im.blobs.map((b) => ({
            desc: b.desc,
            open: async () => {
              // A source that sends a little and then never ends, until it is destroyed.
              const s = new Readable({ read() {} });
              s.push(b.bytes.subarray(0, Math.min(10, b.bytes.length)));
              sources.push(s);
              if (sources.length === 2) controller.abort(new Error('stop'));
              return s;
            },
          })),
          { concurrency: 2 },
        )
        .catch((e: unknown) => e);
      expect(isAirlockError(err, 'ABORTED')).toBe(true);
      expect(sources.length).toBeGreaterThan(0);
      expect(sources.every((s) => s.destroyed)).toBe(true);
      expect(await fsp.readdir(dir)).toEqual([]);
    });
  });

  describe('when one body does not match its digest', () => {
    it('fails with DIGEST_MISMATCH and leaves neither the archive nor FILE.partial', async () => {
      const im = image();
      const out = path.join(dir, 'bad.tar');
      const w = await ArchiveWriter.create({ path: out, mtime: 1700000000 });
      await w.writeHeader(im.index);
      await w.addBlob(im.manifest.desc, im.manifest.bytes);
      const victim = im.blobs.findIndex((b) => b.desc.size > 1_000_000);
      const err = await w
        .addBlobs(
          im.blobs.map((b, i) => ({
            desc: b.desc,
            open: async () => {
              if (i !== victim) return served(b);
              const evil = Buffer.from(b.bytes);
              evil[evil.length - 1] = (evil[evil.length - 1] ?? 0) ^ 1;
              return served(b, evil);
            },
          })),
          { concurrency: 3 },
        )
        .catch((e: unknown) => e);
      expect(isAirlockError(err, 'DIGEST_MISMATCH')).toBe(true);
      expect(await fsp.readdir(dir)).toEqual([]);
      await expect(w.finish()).rejects.toThrow(/aborted/);
    });
  });
});
