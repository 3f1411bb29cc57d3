/**
 * The archive reader: an OCI image layout inside an uncompressed tar, read by seeking.
 *
 * open() makes one sequential pass over the tar HEADERS only, jumping over each body by its
 * size, and builds a table name → {offset, size}. Nothing is extracted; blobs are read later as
 * byte ranges of the file, through a VerifyingStream. The archive is untrusted input: every rule
 * of docs/archive-format.md ("Reading an archive safely") is enforced here, and any breach is an
 * AirlockError 'ARCHIVE' naming the entry.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { AirlockError, errorLine } from '../errors.js';
import { digestAlgorithm, isDigest, VerifyingStream, type Digest } from '../oci/digest.js';
import { isIndex, parseManifest, type Descriptor, type ImageIndex } from '../oci/manifest.js';
import { isManifestMediaType, MAX_MANIFEST_BYTES, MediaType } from '../oci/media-types.js';
import type { OpOptions, ReadOnlyStorage, Resolver } from '../content/storage.js';
import { digestFromBlobPath, INDEX_FILE, isNonDistributable, LAYOUT_VERSION, OCI_LAYOUT_FILE } from './format.js';
import { BLOCK, isZeroBlock, padded, parseHeader, parsePax, TarFormatError } from './tar-header.js';
import { FileHasher } from './positional.js';

export interface ArchiveEntry {
  readonly name: string;
  /** byte offset of the entry's body in the archive file */
  readonly offset: number;
  readonly size: number;
}

export interface ArchiveReaderOptions {
  signal?: AbortSignal;
  /** refuse archives with more entries than this (default 1,000,000) */
  maxEntries?: number;
}

export interface VerifyBlobsOptions {
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, entry: ArchiveEntry) => void;
}

/** Limits that keep a hostile archive from costing unbounded memory or time. */
export const ReaderLimits = {
  maxEntries: 1_000_000,
  /** a pax header only carries a path and a size here; anything bigger is not ours */
  maxPaxBytes: 64 * 1024,
  maxLayoutFileBytes: 4096,
  maxIndexBytes: MAX_MANIFEST_BYTES,
  /** zero padding after the end-of-archive marker (tar pads to 10 KiB records; be generous) */
  maxTrailingBytes: 1024 * 1024,
} as const;

/** Directory entries some tar tools write; allowed, and ignored. Everything else must be a regular file. */
const ALLOWED_DIRS = new Set(['', 'blobs', 'blobs/sha256', 'blobs/sha512']);

const READ_CHUNK = 256 * 1024;

function archiveError(file: string, message: string, cause?: unknown): AirlockError {
  return new AirlockError('ARCHIVE', `${file}: ${message}`, { side: 'archive', ...(cause !== undefined ? { cause } : {}) });
}

export class ArchiveReader implements ReadOnlyStorage, Resolver {
  readonly path: string;
  readonly index: ImageIndex;
  readonly indexBytes: Buffer;
  readonly layoutVersion: string;
  readonly #fh: FileHandle;
  readonly #entries: ArchiveEntry[];
  readonly #blobs: Map<string, ArchiveEntry>;
  #closed = false;

  private constructor(
    file: string,
    fh: FileHandle,
    entries: ArchiveEntry[],
    blobs: Map<string, ArchiveEntry>,
    index: ImageIndex,
    indexBytes: Buffer,
    layoutVersion: string,
  ) {
    this.path = file;
    this.#fh = fh;
    this.#entries = entries;
    this.#blobs = blobs;
    this.index = index;
    this.indexBytes = indexBytes;
    this.layoutVersion = layoutVersion;
  }

  static async open(file: string, opts: ArchiveReaderOptions = {}): Promise<ArchiveReader> {
    const fh = await openArchiveFile(file);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw archiveError(file, 'is not a regular file');
      const entries = await scan(fh, file, st.size, opts);
      const byName = new Map(entries.map((e) => [e.name, e]));
      const blobs = new Map<string, ArchiveEntry>();
      for (const e of entries) {
        const d = digestFromBlobPath(e.name);
        if (d) blobs.set(d, e);
      }
      const layoutEntry = byName.get(OCI_LAYOUT_FILE);
      if (!layoutEntry) throw archiveError(file, `has no ${OCI_LAYOUT_FILE} file: not an OCI image layout archive`);
      const indexEntry = byName.get(INDEX_FILE);
      if (!indexEntry) throw archiveError(file, `has no ${INDEX_FILE}: not an OCI image layout archive`);
      const layoutVersion = await readLayoutVersion(fh, file, layoutEntry);
      if (indexEntry.size > ReaderLimits.maxIndexBytes) {
        throw archiveError(file, `${INDEX_FILE} is ${indexEntry.size} bytes, over the ${ReaderLimits.maxIndexBytes}-byte limit`);
      }
      const indexBytes = await readRange(fh, indexEntry.offset, indexEntry.size);
      let index;
      try {
        index = parseManifest(indexBytes, { what: INDEX_FILE, side: 'archive', mediaType: MediaType.OciIndex });
      } catch (e) {
        throw archiveError(file, errorLine(e), e);
      }
      if (!isIndex(index) || (index.mediaType !== undefined && index.mediaType !== MediaType.OciIndex)) {
        throw archiveError(file, `${INDEX_FILE} is not an OCI image index (image-spec image-layout.md#indexjson-file)`);
      }
      return new ArchiveReader(file, fh, entries, blobs, index, indexBytes, layoutVersion);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  /** Entries in archive order (directory entries excluded). */
  *entries(): Iterable<ArchiveEntry> {
    yield* this.#entries;
  }

  /** The entry holding `digest`, if the archive has it. */
  entry(digest: Digest | string): ArchiveEntry | undefined {
    return this.#blobs.get(digest);
  }

  async exists(desc: Descriptor, _options?: OpOptions): Promise<boolean> {
    return this.#blobs.has(desc.digest);
  }

  /** A verified stream of the blob: it errors instead of ending when size or digest differ. */
  async fetch(desc: Descriptor, options: OpOptions = {}): Promise<Readable> {
    this.#assertOpen();
    const e = this.#blobs.get(desc.digest);
    if (!e) throw new AirlockError('NOT_FOUND', `${this.path}: blob ${desc.digest} is not in the archive`, { side: 'archive' });
    if (e.size !== desc.size) {
      throw new AirlockError(
        'SIZE_MISMATCH',
        `${this.path}: ${e.name} is ${e.size} bytes, but the descriptor says ${desc.size}`,
        { side: 'archive' },
      );
    }
    const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `${this.path}: ${e.name}`, side: 'archive' });
    pipeline(rangeStream(this.#fh, e.offset, e.size, options.signal), verifier, () => {});
    return verifier;
  }

  /** Resolve `org.opencontainers.image.ref.name` (or a digest listed in index.json) to its descriptor. */
  async resolve(refName: string, _options?: OpOptions): Promise<Descriptor> {
    const byName = this.index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === refName);
    if (byName) return byName;
    if (isDigest(refName)) {
      const byDigest = this.index.manifests.find((d) => d.digest === refName);
      if (byDigest) return byDigest;
    }
    throw new AirlockError('NOT_FOUND', `${this.path}: index.json has no manifest named ${refName}`, { side: 'archive' });
  }

  /**
   * Read every blob once (streaming) and check that it hashes to the digest in its name.
   * Throws ARCHIVE naming the first bad blob.
   */
  async verifyBlobs(opts: VerifyBlobsOptions = {}): Promise<void> {
    this.#assertOpen();
    const blobs = [...this.#blobs.entries()];
    const total = blobs.length;
    const concurrency = Math.max(1, Math.min(opts.concurrency ?? 2, 16));
    let next = 0;
    let done = 0;
    let failed: unknown;
    const worker = async (): Promise<void> => {
      while (failed === undefined && next < blobs.length) {
        const [digest, e] = blobs[next++]!;
        if (opts.signal?.aborted) throw new AirlockError('ABORTED', `checking ${this.path} was cancelled`);
        const hash = createHash(digestAlgorithm(digest as Digest));
        for await (const chunk of rangeStream(this.#fh, e.offset, e.size, opts.signal)) hash.update(chunk as Buffer);
        const actual = `${digestAlgorithm(digest as Digest)}:${hash.digest('hex')}`;
        if (actual !== digest) {
          throw archiveError(this.path, `${e.name} hashes to ${actual}: the blob is corrupt or was altered`);
        }
        done++;
        opts.onProgress?.(done, total, e);
      }
    };
    const workers = Array.from({ length: Math.min(concurrency, Math.max(1, total)) }, () =>
      worker().catch((err: unknown) => {
        failed ??= err;
      }),
    );
    await Promise.all(workers);
    if (failed !== undefined) throw failed;
  }

  /**
   * Check that every descriptor reachable from index.json is in the archive with the size its
   * descriptor gives, reading (and verifying) the manifests on the way. Children of an image index
   * that `mayBeAbsent` accepts are skipped when absent (pack's platform filter); non-distributable
   * layers may always be absent.
   */
  async verifyGraph(opts: { mayBeAbsent?: (desc: Descriptor) => boolean } = {}): Promise<void> {
    this.#assertOpen();
    const seen = new Set<string>();
    const visit = async (desc: Descriptor, from: string, depth: number, optional: boolean): Promise<void> => {
      if (seen.has(desc.digest)) return;
      const e = this.#blobs.get(desc.digest);
      if (!e) {
        if (isNonDistributable(desc) || (optional && opts.mayBeAbsent?.(desc) === true)) return;
        throw archiveError(this.path, `${from} names ${desc.digest} (${desc.mediaType}), which is not in the archive`);
      }
      if (e.size !== desc.size) {
        throw archiveError(this.path, `${from} says ${desc.digest} is ${desc.size} bytes, but ${e.name} is ${e.size}`);
      }
      seen.add(desc.digest);
      if (!isManifestMediaType(desc.mediaType)) return;
      if (depth > 16) throw archiveError(this.path, `${from}: manifests nest deeper than 16 levels`);
      if (e.size > MAX_MANIFEST_BYTES) throw archiveError(this.path, `manifest ${desc.digest} is over the ${MAX_MANIFEST_BYTES}-byte limit`);
      const bytes = await readRange(this.#fh, e.offset, e.size);
      const actual = `${digestAlgorithm(desc.digest)}:${createHash(digestAlgorithm(desc.digest)).update(bytes).digest('hex')}`;
      if (actual !== desc.digest) throw archiveError(this.path, `${e.name} hashes to ${actual}: the blob is corrupt or was altered`);
      let m;
      try {
        m = parseManifest(bytes, { mediaType: desc.mediaType, what: `manifest ${desc.digest}`, side: 'archive' });
      } catch (err) {
        throw archiveError(this.path, errorLine(err), err);
      }
      const where = `manifest ${desc.digest}`;
      if (isIndex(m)) for (const c of m.manifests) await visit(c, where, depth + 1, true);
      else for (const c of [m.config, ...m.layers]) await visit(c, where, depth + 1, false);
    };
    for (const d of this.index.manifests) await visit(d, INDEX_FILE, 0, false);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new AirlockError('INTERNAL', `${this.path}: the archive reader is closed`);
  }
}

/**
 * One pass over the headers. Returns the regular-file entries in archive order.
 * Rules: docs/archive-format.md "Reading an archive safely".
 */
async function scan(fh: FileHandle, file: string, fileSize: number, opts: ArchiveReaderOptions): Promise<ArchiveEntry[]> {
  const maxEntries = opts.maxEntries ?? ReaderLimits.maxEntries;
  const entries: ArchiveEntry[] = [];
  const names = new Set<string>();
  const block = Buffer.alloc(BLOCK);
  let pos = 0;
  let pax: Map<string, string> | undefined;
  let headers = 0;

  if (fileSize === 0) throw archiveError(file, 'is empty');
  const magic = await readRange(fh, 0, Math.min(6, fileSize));
  if (magic[0] === 0x1f && magic[1] === 0x8b) throw archiveError(file, 'archive is gzip-compressed: decompress it first (gunzip)');
  if (magic.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) {
    throw archiveError(file, 'archive is zstd-compressed: decompress it first (zstd -d)');
  }
  if (magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) throw archiveError(file, 'archive is xz-compressed: decompress it first (xz -d)');
  if (magic.subarray(0, 3).toString('latin1') === 'BZh') throw archiveError(file, 'archive is bzip2-compressed: decompress it first (bunzip2)');

  for (;;) {
    if (opts.signal?.aborted) throw new AirlockError('ABORTED', `reading ${file} was cancelled`);
    if (pos + BLOCK > fileSize) {
      throw archiveError(file, `ends at byte ${fileSize} without the end-of-archive marker: the archive is truncated`);
    }
    await readInto(fh, block, pos);
    if (isZeroBlock(block)) {
      if (pax) throw archiveError(file, `pax header at offset ${pos - BLOCK} is not followed by an entry`);
      await checkEnd(fh, file, pos, fileSize);
      return entries;
    }
    let h;
    try {
      h = parseHeader(block);
    } catch (e) {
      if (e instanceof TarFormatError) {
        const what = headers === 0 ? 'is not a tar archive' : `has a damaged tar header at offset ${pos}`;
        throw archiveError(file, `${what} (${e.message})`);
      }
      throw e;
    }
    headers++;
    if (headers > 2 * maxEntries + 2) throw archiveError(file, `has more than ${maxEntries} entries`);
    const dataOffset = pos + BLOCK;
    const label = `entry "${printable(pax?.get('path') ?? h.name)}" at offset ${pos}`;

    if (h.type === 'x') {
      if (pax) throw archiveError(file, `${label}: two pax headers in a row`);
      if (h.size > ReaderLimits.maxPaxBytes) throw archiveError(file, `${label}: pax header of ${h.size} bytes is over the ${ReaderLimits.maxPaxBytes}-byte limit`);
      if (dataOffset + padded(h.size) > fileSize) throw archiveError(file, `${label}: pax header runs past the end of the file: the archive is truncated`);
      try {
        pax = parsePax(await readRange(fh, dataOffset, h.size));
      } catch (e) {
        throw archiveError(file, `${label}: ${e instanceof TarFormatError ? e.message : errorLine(e)}`);
      }
      if (pax.has('linkpath')) throw archiveError(file, `${label}: links are not allowed in an airlock archive`);
      pos = dataOffset + padded(h.size);
      continue;
    }

    let name = h.name;
    let size = h.size;
    if (pax) {
      const p = pax.get('path');
      if (p !== undefined) name = p;
      const s = pax.get('size');
      if (s !== undefined) {
        if (!/^[0-9]{1,16}$/.test(s) || !Number.isSafeInteger(Number(s))) throw archiveError(file, `${label}: pax size "${printable(s)}" is not a number`);
        size = Number(s);
      }
      pax = undefined;
    }
    const what = `entry "${printable(name)}" at offset ${pos}`;

    switch (h.type) {
      case '0':
      case '5':
        break;
      case '1':
        throw archiveError(file, `${what} is a hard link; links are not allowed in an airlock archive`);
      case '2':
        throw archiveError(file, `${what} is a symbolic link; links are not allowed in an airlock archive`);
      case '3':
        throw archiveError(file, `${what} is a character device; only regular files are allowed`);
      case '4':
        throw archiveError(file, `${what} is a block device; only regular files are allowed`);
      case '6':
        throw archiveError(file, `${what} is a FIFO; only regular files are allowed`);
      case 'L':
      case 'K':
        throw archiveError(file, `${what} is a GNU long-name header; write long names with pax headers instead`);
      case 'g':
        throw archiveError(file, `${what} is a pax global header, which airlock archives do not use`);
      default:
        throw archiveError(file, `${what} has tar type '${printable(h.type)}'; only regular files are allowed`);
    }

    // Names: relative, no "..", no empty segments (image-spec image-layout.md lists the only files).
    if (name.startsWith('./')) name = name.slice(2);
    const isDir = h.type === '5' || name.endsWith('/');
    if (isDir) name = name.replace(/\/+$/, '');
    if (name.startsWith('/')) throw archiveError(file, `${what} has an absolute path`);
    if (/^[A-Za-z]:|\\/.test(name)) throw archiveError(file, `${what} has a Windows path`);
    const segments = name.split('/');
    if (segments.includes('..')) throw archiveError(file, `${what} has a ".." path segment`);
    if (name !== '' && segments.some((s) => s === '' || s === '.')) throw archiveError(file, `${what} has an empty or "." path segment`);

    if (isDir) {
      if (!ALLOWED_DIRS.has(name)) throw archiveError(file, `${what} is a directory other than blobs/ and blobs/<algorithm>/`);
      if (size !== 0) throw archiveError(file, `${what} is a directory with a body`);
      pos = dataOffset;
      continue;
    }
    if (name !== OCI_LAYOUT_FILE && name !== INDEX_FILE && digestFromBlobPath(name) === undefined) {
      throw archiveError(file, `${what} is not allowed: an airlock archive holds only oci-layout, index.json and blobs/<algorithm>/<hex>`);
    }
    if (names.has(name)) throw archiveError(file, `${what} is a duplicate of an earlier entry with the same name`);
    if (dataOffset + size > fileSize) {
      throw archiveError(file, `${what} declares ${size} bytes but the file ends ${fileSize - dataOffset} bytes later: the archive is truncated`);
    }
    if (entries.length >= maxEntries) throw archiveError(file, `has more than ${maxEntries} entries`);
    names.add(name);
    entries.push({ name, offset: dataOffset, size });
    pos = dataOffset + padded(size);
  }
}

/** After the first zero block: a second one, then nothing but zero padding. */
async function checkEnd(fh: FileHandle, file: string, pos: number, fileSize: number): Promise<void> {
  const rest = fileSize - pos;
  if (rest < 2 * BLOCK) throw archiveError(file, `ends at byte ${fileSize} inside the end-of-archive marker: the archive is truncated`);
  if (rest > 2 * BLOCK + ReaderLimits.maxTrailingBytes) {
    throw archiveError(file, `has ${rest - 2 * BLOCK} bytes after the end-of-archive marker at offset ${pos}`);
  }
  const tail = await readRange(fh, pos, rest);
  const bad = tail.findIndex((b) => b !== 0);
  if (bad >= 0) {
    const at = pos + bad;
    throw archiveError(
      file,
      at < pos + 2 * BLOCK
        ? `has a lone zero block at offset ${pos} followed by data: the archive is damaged`
        : `has trailing data at offset ${at}, after the end-of-archive marker`,
    );
  }
}

async function readLayoutVersion(fh: FileHandle, file: string, e: ArchiveEntry): Promise<string> {
  if (e.size > ReaderLimits.maxLayoutFileBytes) throw archiveError(file, `${OCI_LAYOUT_FILE} is ${e.size} bytes; it should be a tiny JSON object`);
  const bytes = await readRange(fh, e.offset, e.size);
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw archiveError(file, `${OCI_LAYOUT_FILE} is not JSON`);
  }
  const version = (v as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (typeof version !== 'string') throw archiveError(file, `${OCI_LAYOUT_FILE} has no imageLayoutVersion`);
  // image-spec image-layout.md#oci-layout-file: 1.0.0 is the only version; a newer one may change the layout.
  if (version !== LAYOUT_VERSION) {
    throw archiveError(file, `unknown oci-layout version "${printable(version)}" (this airlock reads ${LAYOUT_VERSION}); upgrade airlock`);
  }
  return version;
}

async function readInto(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) throw new AirlockError('ARCHIVE', `unexpected end of file at offset ${position + off}`, { side: 'archive' });
    off += bytesRead;
  }
}

async function readRange(fh: FileHandle, position: number, size: number): Promise<Buffer> {
  const buf = Buffer.alloc(size);
  await readInto(fh, buf, position);
  return buf;
}

/** A stream of `size` bytes at `start`, read with positional reads: memory stays at one chunk. */
function rangeStream(fh: FileHandle, start: number, size: number, signal?: AbortSignal): Readable {
  let pos = start;
  const end = start + size;
  return new Readable({
    highWaterMark: READ_CHUNK,
    ...(signal ? { signal } : {}),
    read(this: Readable) {
      if (pos >= end) {
        this.push(null);
        return;
      }
      const n = Math.min(READ_CHUNK, end - pos);
      const buf = Buffer.allocUnsafe(n);
      fh.read(buf, 0, n, pos).then(
        ({ bytesRead }) => {
          if (bytesRead === 0) {
            this.destroy(new AirlockError('ARCHIVE', `unexpected end of file at offset ${pos}`, { side: 'archive' }));
            return;
          }
          pos += bytesRead;
          this.push(bytesRead === n ? buf : buf.subarray(0, bytesRead));
        },
        (e: unknown) => this.destroy(e instanceof Error ? e : new Error(String(e))),
      );
    },
  });
}

function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 160 ? `${clean.slice(0, 160)}…` : clean;
}

/**
 * Check FILE against FILE.sha256 (`<hex>  <name>`, sha256sum format) when the sidecar exists.
 * Streams the archive once; throws ARCHIVE on a mismatch or a malformed sidecar.
 */
export async function verifySidecar(file: string, opts: { signal?: AbortSignal } = {}): Promise<'ok' | 'absent'> {
  const sidecar = `${file}.sha256`;
  let text: string;
  try {
    const st = await fsp.stat(sidecar);
    if (st.size > 4096) throw archiveError(sidecar, 'is too large to be a sha256sum line');
    text = await fsp.readFile(sidecar, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    if (e instanceof AirlockError) throw e;
    throw new AirlockError('IO', `${sidecar}: cannot read (${(e as NodeJS.ErrnoException).code ?? errorLine(e)})`, { cause: e, side: 'archive' });
  }
  const m = /^([0-9a-fA-F]{64}) [ *](.+)\n?$/.exec(text);
  if (!m) throw archiveError(sidecar, `is not a sha256sum line ("<hex>  ${path.basename(file)}")`);
  const expected = m[1]!.toLowerCase();
  const fh = await openArchiveFile(file);
  let size: number;
  try {
    size = (await fh.stat()).size;
  } finally {
    await fh.close();
  }
  // Hashed on a worker thread: the caller checks every blob on the main thread
  // meanwhile, so the two full passes over the archive use both cores.
  const hasher = new FileHasher(file);
  const onAbort = (): void => void hasher.close();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let actual: string;
  try {
    actual = await hasher.finish(size);
  } catch (e) {
    if (opts.signal?.aborted) throw new AirlockError('ABORTED', `${file}: checking the sidecar was cancelled`, { cause: e, side: 'archive' });
    throw new AirlockError('IO', `${file}: cannot read the archive to check ${path.basename(sidecar)} (${errorLine(e)})`, { cause: e, side: 'archive' });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await hasher.close();
  }
  if (actual !== expected) {
    throw archiveError(file, `sha256 is ${actual} but ${path.basename(sidecar)} says ${expected}: the archive was changed or damaged in transit`);
  }
  return 'ok';
}

/** Open an archive for reading, with the one-line errors every reader of it shares. */
async function openArchiveFile(file: string): Promise<FileHandle> {
  try {
    return await fsp.open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AirlockError('NOT_FOUND', `${file}: no such archive`, { cause: e, side: 'archive' });
    throw new AirlockError('IO', `${file}: cannot open the archive (${code ?? errorLine(e)})`, { cause: e, side: 'archive' });
  }
}
