import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import type { Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { AirlockError } from '../../errors.js';
import { catalogError } from './errors.js';
import { IndexIgnore, INDEX_IGNORE } from './indexignore.js';

/**
 * The files under one directory of an image, as a container would see them once every
 * layer is applied in order (OCI image-spec layer.md "Applying Changesets"):
 *
 * - a later layer's file replaces an earlier one at the same path (and hides what was
 *   below a directory it replaces);
 * - `.wh.<name>` deletes `<name>` (file or whole directory) from the layers below;
 * - `<dir>/.wh..wh..opq` hides everything the layers below had in `<dir>`;
 * - whiteouts only act on lower layers, never on entries of their own layer, wherever
 *   they appear in it.
 *
 * Each layer is streamed once (gunzip → tar), never extracted. A file under the
 * directory is handed, as it streams, to a parser from `parse`, whose result (small:
 * it is the reduced catalog of that file) is kept; if a later layer deletes or replaces
 * the file, its result is dropped. Content outside the directory is skipped unread.
 *
 * Refused, as a `layer` catalog error: a layer media type that is neither tar nor gzip
 * (zstd needs Node ≥ 22.15), an entry path with `..`, a symbolic link in the directory
 * (opm would follow it out of the catalog), and a hard link to a file outside it.
 */
export interface LayerSource {
  readonly descriptor: Descriptor;
  /** the layer's bytes; the stream must fail if they do not match the descriptor */
  open(): Promise<Readable>;
}

export interface FileParser<T> {
  write(chunk: Buffer): void;
  end(): T;
}

export interface LayerViewOptions<T> {
  /** the directory, relative to the image root, `/`-separated, no leading or trailing slash */
  readonly root: string;
  /** a parser for the file at `path` (relative to the root) */
  parse(path: string): FileParser<T>;
  readonly signal?: AbortSignal;
}

export interface LayerView<T> {
  /** the directory exists in the final filesystem */
  readonly rootFound: boolean;
  /** the files kept, in the order opm's fs.WalkDir visits them (component by component, by name) */
  readonly files: readonly (readonly [path: string, value: T])[];
  /** files left out by `.indexignore` patterns (the `.indexignore` files themselves not counted) */
  readonly ignored: readonly string[];
}

type Entry<T> = { kind: 'file'; value: T } | { kind: 'bad'; error: unknown } | { kind: 'ignore'; text: string } | { kind: 'dir' } | { kind: 'other' };

const MAX_IGNORE_BYTES = 1024 * 1024;
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Normalise a tar path: no leading ./ or /, no trailing /, no empty or . parts; `..` is refused. */
export function normaliseTarPath(name: string, layer: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw catalogError('layer', `layer ${layer}: entry "${name.slice(0, 200)}" has a ".." path component`);
  return parts.join('/');
}

/** Is `p` the directory `dir` or inside it? */
function within(p: string, dir: string): boolean {
  return dir === '' || p === dir || p.startsWith(`${dir}/`);
}

/** fs.WalkDir order: compare component by component. */
export function walkOrder(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

function decompressor(desc: Descriptor): 'gzip' | 'none' {
  const mt = desc.mediaType;
  if (mt === MediaType.OciLayerGzip || mt === MediaType.DockerLayerGzip || mt.endsWith('.tar+gzip') || mt.endsWith('tar.gzip')) return 'gzip';
  if (mt === MediaType.OciLayer || mt.endsWith('.tar')) return 'none';
  if (mt.endsWith('+zstd')) {
    throw catalogError('layer', `layer ${desc.digest} is zstd-compressed (${mt}); reading it needs Node ≥ 22.15, airlock runs on Node 20: ask the vendor for a gzip catalog`);
  }
  throw catalogError('layer', `layer ${desc.digest} has media type ${mt}, which is not a tar layer`);
}

export async function readLayerView<T>(layers: readonly LayerSource[], opts: LayerViewOptions<T>): Promise<LayerView<T>> {
  const root = opts.root;
  const view = new Map<string, Entry<T>>();
  for (const layer of layers) {
    opts.signal?.throwIfAborted();
    await applyLayer(layer, root, view, opts);
  }
  const rootEntry = view.get(root);
  if (rootEntry !== undefined && rootEntry.kind !== 'dir') {
    throw catalogError('layer', `/${root}, the catalog directory named by the image's label, is not a directory in the image`);
  }
  const rootFound = rootEntry !== undefined || [...view.keys()].some((k) => k.startsWith(`${root}/`));
  const ignore = new IndexIgnore();
  const rel = (k: string): string => (root === '' ? k : k.slice(root.length + 1));
  // .indexignore files in walk order, so deeper files come later and win
  const ignoreFiles = [...view].filter(([, e]) => e.kind === 'ignore').sort(([a], [b]) => walkOrder(a, b));
  for (const [k, e] of ignoreFiles) ignore.add(rel(k), (e as { text: string }).text);
  const files: [string, T][] = [];
  const ignored: string[] = [];
  const bad: [string, unknown][] = [];
  for (const [k, e] of view) {
    if (e.kind !== 'file' && e.kind !== 'bad') continue;
    const r = rel(k);
    if (ignore.ignores(r)) ignored.push(r);
    else if (e.kind === 'bad') bad.push([r, e.error]);
    else files.push([r, e.value]);
  }
  bad.sort(([a], [b]) => walkOrder(a, b));
  if (bad.length > 0) throw bad[0]![1];
  files.sort(([a], [b]) => walkOrder(a, b));
  ignored.sort(walkOrder);
  return { rootFound, files, ignored };
}

async function applyLayer<T>(layer: LayerSource, root: string, view: Map<string, Entry<T>>, opts: LayerViewOptions<T>): Promise<void> {
  const id = layer.descriptor.digest;
  const mode = decompressor(layer.descriptor);
  // what this layer does, applied to the lower view only when the layer has been read
  const added = new Map<string, Entry<T>>();
  const removed: string[] = [];
  const opaque: string[] = [];

  const source = await layer.open();
  const ex = extract();
  let feedError: unknown;
  // never rejects: a failure of the source (a digest mismatch at the end) or of gunzip
  // is recorded and ends the entry iteration with that error
  const feeding = (mode === 'gzip' ? pipeline(source, createGunzip(), ex) : pipeline(source, ex)).catch((e: unknown) => {
    feedError ??= e;
    ex.destroy(e as Error);
  });
  try {
    for await (const entry of ex) {
      opts.signal?.throwIfAborted();
      const h = entry.header;
      const p = normaliseTarPath(h.name, id);
      const base = p.slice(p.lastIndexOf('/') + 1);
      const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
      if (base === OPAQUE) {
        if (within(parent, root) || within(root, parent)) opaque.push(parent);
        entry.resume();
        continue;
      }
      if (base.startsWith(WHITEOUT)) {
        const target = parent === '' ? base.slice(WHITEOUT.length) : `${parent}/${base.slice(WHITEOUT.length)}`;
        if (within(target, root) || within(root, target)) removed.push(target);
        entry.resume();
        continue;
      }
      if (!within(p, root)) {
        // a file where an ancestor of the catalog directory was: it hides the directory
        if (within(root, p) && h.type !== 'directory') added.set(p, { kind: 'other' });
        entry.resume();
        continue;
      }
      await readEntry(entry, h, p, root, id, view, added, opts);
    }
    await feeding;
  } catch (e) {
    feedError ??= e;
    source.destroy();
    ex.destroy();
    await feeding;
  }
  if (feedError !== undefined) throw feedError;

  // lower layers: whiteouts, opaque directories, then replacement by this layer's entries
  const keys = [...view.keys()];
  for (const w of removed) for (const k of keys) if (within(k, w)) view.delete(k);
  for (const o of opaque) for (const k of keys) if (k !== o && within(k, o)) view.delete(k);
  for (const [p, e] of added) {
    if (e.kind !== 'dir') for (const k of [...view.keys()]) if (within(k, p)) view.delete(k);
    // a file below an ancestor that was a file: the ancestor becomes a directory
    for (let a = p; a.includes('/'); ) {
      a = a.slice(0, a.lastIndexOf('/'));
      if (view.get(a)?.kind !== 'dir' && view.has(a)) view.delete(a);
    }
    const prev = view.get(p);
    if (e.kind === 'dir' && prev?.kind === 'dir') continue;
    view.set(p, e);
  }
}

/** A tar entry's content stream (tar-stream's streamx Readable). */
interface EntryStream extends AsyncIterable<unknown> {
  resume(): unknown;
}

async function readEntry<T>(
  entry: EntryStream,
  h: Header,
  p: string,
  root: string,
  layer: string,
  view: Map<string, Entry<T>>,
  added: Map<string, Entry<T>>,
  opts: LayerViewOptions<T>,
): Promise<void> {
  const rel = p === root ? '' : p.slice(root === '' ? 0 : root.length + 1);
  switch (h.type) {
    case 'directory':
      entry.resume();
      added.set(p, { kind: 'dir' });
      return;
    case 'file':
    case 'contiguous-file': {
      const base = p.slice(p.lastIndexOf('/') + 1);
      if (base === INDEX_IGNORE) {
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const c of entry) {
          n += (c as Buffer).length;
          if (n > MAX_IGNORE_BYTES) throw catalogError('layer', `layer ${layer}: /${p} is larger than ${MAX_IGNORE_BYTES} bytes`);
          chunks.push(c as Buffer);
        }
        added.set(p, { kind: 'ignore', text: Buffer.concat(chunks).toString('utf8') });
        return;
      }
      if (p === root) {
        entry.resume();
        added.set(p, { kind: 'other' });
        return;
      }
      // A file that fails to parse is an error only if it is still there, and not
      // ignored, once every layer is applied: .indexignore may come later, and a later
      // layer may delete or replace the file. Until then, keep the first error.
      const parser = opts.parse(rel);
      let error: unknown;
      for await (const c of entry) {
        if (error !== undefined) continue;
        try {
          parser.write(c as Buffer);
        } catch (e) {
          if (!(e instanceof AirlockError)) throw e;
          error = e;
        }
      }
      if (error === undefined) {
        try {
          added.set(p, { kind: 'file', value: parser.end() });
          return;
        } catch (e) {
          if (!(e instanceof AirlockError)) throw e;
          error = e;
        }
      }
      added.set(p, { kind: 'bad', error });
      return;
    }
    case 'link': {
      entry.resume();
      const target = normaliseTarPath(h.linkname ?? '', layer);
      const t = added.get(target) ?? view.get(target);
      if (!within(target, root) || t === undefined || (t.kind !== 'file' && t.kind !== 'ignore' && t.kind !== 'bad')) {
        throw catalogError('layer', `layer ${layer}: /${p} is a hard link to /${target}, which is not a file of the catalog directory; airlock cannot read it`);
      }
      added.set(p, t);
      return;
    }
    case 'symlink':
      entry.resume();
      throw catalogError(
        'layer',
        `layer ${layer}: /${p} is a symbolic link (to ${h.linkname ?? '?'}); links in the catalog directory are not supported, since they may point outside it`,
      );
    default:
      // devices, fifos: not catalog content; they still replace what was there
      entry.resume();
      added.set(p, { kind: 'other' });
  }
}
