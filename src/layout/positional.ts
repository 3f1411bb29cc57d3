/**
 * Writing many blobs into the archive at once, each at an offset computed up front.
 *
 * Blob sizes are known before a byte is fetched, so the tar layout is too: every entry is a
 * header (tar-stream's own bytes, so the archive is byte-identical to one written one blob at a
 * time), the body, zero padding to 512 bytes; the archive ends with two zero blocks
 * (POSIX.1-2001 pax "ustar Interchange Format"). The headers and padding are written first; then
 * several bodies stream from their sources at once, each with positional writes to its own
 * region of FILE.partial. No second copy of the content lands on disk, and the order of entries
 * does not depend on which fetch finishes first (docs/archive-format.md, "Determinism").
 *
 * The sidecar sha256 must be of the file in order. A worker thread reads back every region once
 * it is complete (from the page cache) and hashes it, on the second core, while later regions are
 * still being fetched.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setMaxListeners } from 'node:events';
import { Worker } from 'node:worker_threads';
import { pack as tarPack } from 'tar-stream';
import { mapLimit } from '../graph/pool.js';
import type { Descriptor } from '../oci/manifest.js';
import { BLOCK, padded } from './tar-header.js';

/** tar-stream's end of archive: two zero blocks. */
export const TAR_TRAILER_BYTES = 2 * BLOCK;
/**
 * Writes are gathered to at least this much per writev: one thread-pool trip per 64 KiB chunk was the
 * bottleneck. Not more: chunks held for a 1 MiB batch outlive the young generation, and the old-space
 * collections cost ~0.2 s more CPU per GiB than 256 KiB batches (measured with --cpu-prof).
 */
const WRITE_BATCH = 256 * 1024;
/** The hashing worker is told to move on in steps of at least this much (or at a region's end). */
const HASH_STEP = 8 * 1024 * 1024;

export interface TarEntryHeader {
  name: string;
  size: number;
  mtime: Date;
}

/**
 * The exact header bytes tar-stream writes for a regular file entry (ustar, or pax + ustar for a
 * name over 100 bytes), obtained from tar-stream itself so both write paths agree byte for byte.
 */
export async function tarHeaderBytes(h: TarEntryHeader): Promise<Buffer> {
  const p = tarPack();
  const out: Buffer[] = [];
  p.on('data', (c: unknown) => out.push(c as Buffer));
  p.on('error', () => {});
  const sink = p.entry({ name: h.name, size: h.size, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: h.mtime, type: 'file' });
  sink.on('error', () => {});
  // The header is pushed when the entry opens, before any body byte is asked for.
  await new Promise<void>((resolve) => setImmediate(resolve));
  p.destroy();
  const bytes = Buffer.concat(out);
  if (bytes.length === 0 || bytes.length % BLOCK !== 0) throw new Error(`tar header for ${h.name}: got ${bytes.length} bytes`);
  return bytes;
}

export interface PositionalItem {
  desc: Descriptor;
  name: string;
  /** open the verified content (a stream that errors unless size and digest match) */
  open: (signal: AbortSignal) => Promise<Readable>;
}

export interface PositionalOptions {
  concurrency: number;
  mtime: Date;
  signal?: AbortSignal;
  onBlob?: (desc: Descriptor) => void;
  /** called with each item's failure; returns the error to throw (adds which blob, which side) */
  describe?: (item: PositionalItem, e: unknown) => unknown;
}

interface Slot {
  item: PositionalItem;
  header: Buffer;
  /** offset of the first body byte */
  dataStart: number;
  /** body bytes on disk so far (writes of one body complete in order) */
  written: number;
}

/**
 * Write `items` as tar entries starting at `start` (everything before it is already on disk),
 * then the end-of-archive blocks. Returns the archive's final size and the sha256 (hex) of the
 * whole file from offset 0. On failure the caller removes the file.
 */
export async function writeEntriesAt(fh: FileHandle, file: string, start: number, items: readonly PositionalItem[], o: PositionalOptions): Promise<{ size: number; sha256: string }> {
  const slots: Slot[] = [];
  let pos = start;
  for (const item of items) {
    const header = await tarHeaderBytes({ name: item.name, size: item.desc.size, mtime: o.mtime });
    slots.push({ item, header, dataStart: pos + header.length, written: 0 });
    pos += header.length + padded(item.desc.size);
  }
  const end = pos + TAR_TRAILER_BYTES;

  // Headers, padding and the trailer first: the padding of one entry and the header of the next
  // are adjacent, so each boundary is one small write.
  for (let i = 0; i <= slots.length; i++) {
    const prev = slots[i - 1];
    const next = slots[i];
    const padStart = prev ? prev.dataStart + prev.item.desc.size : start;
    const padLen = prev ? padded(prev.item.desc.size) - prev.item.desc.size : 0;
    const tail = next ? next.header : Buffer.alloc(TAR_TRAILER_BYTES);
    await writeAllAt(fh, [Buffer.alloc(padLen), tail], padStart);
  }

  const hasher = new FileHasher(file);
  try {
    let k = 0; // first slot whose body is not complete
    let told = 0;
    const frontier = (): number => {
      while (k < slots.length && slots[k]!.written === slots[k]!.item.desc.size) k++;
      return k < slots.length ? slots[k]!.dataStart + slots[k]!.written : end;
    };
    const progress = (force: boolean): void => {
      const f = frontier();
      if (f > told && (force || f - told >= HASH_STEP)) {
        told = f;
        hasher.advance(f);
      }
    };
    progress(true);
    await mapLimit(
      slots,
      o.concurrency,
      async (slot, _i, signal) => {
        try {
          await streamBodyAt(fh, slot, signal, () => progress(false));
        } catch (e) {
          throw o.describe ? o.describe(slot.item, e) : e;
        }
        progress(true);
        o.onBlob?.(slot.item.desc);
      },
      o.signal,
    );
    if (frontier() !== end) throw new Error(`internal: archive frontier ${frontier()} short of ${end}`);
    return { size: end, sha256: await hasher.finish(end) };
  } finally {
    await hasher.close();
  }
}

/** Stream one body to its region: batched writev, one write in flight while the next batch fills. */
async function streamBodyAt(fh: FileHandle, slot: Slot, signal: AbortSignal, onWritten: () => void): Promise<void> {
  // One listener per request in flight (ours and the HTTP client's) on the shared signal: not a leak.
  setMaxListeners(0, signal);
  const stream = await slot.item.open(signal);
  // Errors reach us through the iteration below; before it starts, a destroyed source must not
  // raise an unhandled 'error' event.
  stream.on('error', () => {});
  const onAbort = (): void => void stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  // The signal may have fired while the source was being opened: a listener added now would never run.
  if (signal.aborted) {
    onAbort();
    throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
  }
  signal.addEventListener('abort', onAbort, { once: true });
  let at = slot.dataStart;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let inflight: Promise<void> = Promise.resolve();
  const flush = async (): Promise<void> => {
    await inflight;
    const bufs = batch;
    const n = batchBytes;
    const where = at;
    batch = [];
    batchBytes = 0;
    at += n;
    inflight = writeAllAt(fh, bufs, where).then(() => {
      slot.written += n;
      onWritten();
    });
    // Reported when awaited (next flush or the end); never unhandled meanwhile.
    inflight.catch(() => {});
  };
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      batch.push(b);
      batchBytes += b.length;
      if (batchBytes >= WRITE_BATCH) await flush();
    }
    if (batchBytes > 0) await flush();
    await inflight;
  } catch (e) {
    stream.destroy();
    await inflight.catch(() => {});
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (slot.written !== slot.item.desc.size) {
    throw new Error(`internal: blob ${slot.item.desc.digest} wrote ${slot.written} of ${slot.item.desc.size} bytes`);
  }
}

async function writeAllAt(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  if (total === 0) return;
  const { bytesWritten } = await fh.writev(bufs, position);
  if (bytesWritten === total) return;
  // A short write (rare on regular files): finish the rest one write at a time.
  const rest = Buffer.concat(bufs, total).subarray(bytesWritten);
  let off = 0;
  while (off < rest.length) {
    const r = await fh.write(rest, off, rest.length - off, position + bytesWritten + off);
    off += r.bytesWritten;
  }
}

// A CommonJS script for an eval'd worker: read [pos, to) of the file and hash it, in order.
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const fd = fs.openSync(workerData.path, 'r');
const hash = createHash('sha256');
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
let pos = 0;
parentPort.on('message', (m) => {
  while (pos < m.to) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, m.to - pos), pos);
    if (n <= 0) throw new Error('the archive is shorter than expected at offset ' + pos);
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  if (m.end) {
    fs.closeSync(fd);
    parentPort.postMessage({ sha256: hash.digest('hex') });
  }
});
`;

/** sha256 of a file's prefix as it grows, computed by a worker reading back what is already written. */
export class FileHasher {
  readonly #worker: Worker;
  readonly #result: Promise<string>;

  constructor(file: string) {
    this.#worker = new Worker(HASH_WORKER, { eval: true, workerData: { path: file } });
    this.#result = new Promise<string>((resolve, reject) => {
      this.#worker.once('message', (m: { sha256: string }) => resolve(m.sha256));
      this.#worker.once('error', reject);
      this.#worker.once('exit', (code) => reject(new Error(`the hashing worker exited (${code}) before it finished`)));
    });
    this.#result.catch(() => {});
  }

  /** Everything before `to` is on disk and will not change. */
  advance(to: number): void {
    this.#worker.postMessage({ to });
  }

  async finish(to: number): Promise<string> {
    this.#worker.postMessage({ to, end: true });
    return this.#result;
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
