import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { AirlockError } from '../../errors.js';
import type { Digest } from '../../oci/digest.js';
import { digestOf } from '../../oci/digest.js';
import { encodeJson, type Descriptor, type ImageIndex, type ImageManifest } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { catalogError } from './errors.js';
import { goField, schemaOf, SCHEMA_BUNDLE, SCHEMA_CHANNEL, SCHEMA_DEPRECATIONS, SCHEMA_PACKAGE } from './fbc.js';
import type { FilteredCatalog } from './filter.js';
import { readLayerView, type LayerSource } from './layers.js';
import { MetaStreamDecoder } from './meta-stream.js';
import type { CatalogImage, LoadedCatalog } from './reader.js';

/**
 * The opt-in filtered catalog image (oc-mirror's targetCatalog / targetTag route).
 *
 * It is the original image plus **one** layer, built deterministically, so the same
 * catalog and the same filter always give the same digests:
 *
 * - the layer holds `<configs>/` (mode 0755), `<configs>/.wh..wh..opq` (an opaque
 *   whiteout: everything the lower layers had in the directory is hidden) and
 *   `<configs>/catalog.json` (mode 0644), owner 0:0, mtime 0, in that order, gzip level 6.
 *   An opaque marker, not `.wh.configs` followed by a new directory in the same layer:
 *   the marker is what builders write when a directory is replaced within one layer, and
 *   what overlay appliers turn into the opaque attribute; a `.wh.configs` plus a new
 *   `configs/` in one layer is allowed by the spec but relies on the applier treating the
 *   whiteout as acting on lower layers only (an overlay applier makes a whiteout device
 *   that the directory entry then replaces). oc-mirror avoids this with two layers.
 * - `catalog.json` holds the filtered declarative config as opm writes it (declcfg
 *   WriteJSON order: packages by name; in each, the package, its channels by name, its
 *   bundles by name, its other objects by schema, its deprecations; then objects of no
 *   package). Bundles and other objects are copied byte for byte from JSON sources;
 *   packages, channels and deprecations are rewritten (default channel, kept entries) and
 *   indented like opm (4 spaces).
 * - the config is the original one with the new diff_id and a history entry appended,
 *   and `Cmd` set to `serve <configs>`: the original command's `--cache-dir` names a
 *   pre-built cache of the *unfiltered* catalog, which opm would refuse (or serve stale).
 *   The stale cache stays in the lower layers, unused; opm builds its cache at start.
 * - the manifest keeps the original's media type, layers and annotations (OCI manifests
 *   also get `org.opencontainers.image.base.digest` / `base.name` naming the original).
 *
 * This image is airlock's, not the vendor's: it has a new digest, so **the vendor's
 * signature does not apply to it**. It is signed only if the packer signs it with the
 * archive's key; a cluster that requires the vendor's signature for the catalog must use
 * the unchanged catalog instead (the default).
 */

export const FILTERED_CATALOG_FILE = 'catalog.json';
/** gzip level of the filtered layer; part of the determinism contract (same input → same digest) */
export const FILTERED_LAYER_GZIP_LEVEL = 6;

export interface FilteredLayer {
  /** the gzip layer blob */
  readonly descriptor: Descriptor;
  /** sha256 of the uncompressed tar (image-spec config.md#layer-diffid) */
  readonly diffId: Digest;
  /** the catalog file in the image: `/configs/catalog.json` */
  readonly file: string;
  /** bytes of the filtered catalog JSON */
  readonly catalogBytes: number;
  readonly objects: number;
}

export interface BuildFilteredLayerOptions {
  /** the catalog image the filter ran on (same manifest as `catalog` was read from) */
  readonly image: CatalogImage;
  readonly catalog: LoadedCatalog;
  readonly filtered: FilteredCatalog;
  /** a directory for a temporary spool file (deleted before returning) */
  readonly scratchDir: string;
  /** receives the gzip layer bytes; ended when done */
  readonly out: Writable;
  readonly signal?: AbortSignal;
}

interface Spooled {
  /** sort key, opm's WriteJSON order */
  readonly order: readonly [pkg: string, rank: number, name: string, seq: number];
  readonly offset: number;
  readonly length: number;
}

const RANK = { package: 0, channel: 1, bundle: 2, other: 3, deprecations: 4 } as const;
const ROOT_PKG = '\u{10FFFF}'; // objects of no package sort after every package

function compareOrder(a: Spooled['order'], b: Spooled['order']): number {
  for (let i = 0; i < 4; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function encodeOpm(v: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(v, null, 4)}\n`, 'utf8');
}

/** Replace a field wherever Go would have found it (any key equal under case folding). */
function setField(o: Record<string, unknown>, name: string, value: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let done = false;
  for (const [k, v] of Object.entries(o)) {
    if (k.toLowerCase() === name.toLowerCase()) {
      if (!done) out[name] = value;
      done = true;
    } else out[k] = v;
  }
  if (!done) out[name] = value;
  return out;
}

/**
 * Stream the catalog again, write the filtered catalog's objects to a spool file as they
 * come (only one object in memory), then write the layer from the spool in opm's order.
 */
export async function buildFilteredLayer(o: BuildFilteredLayerOptions): Promise<FilteredLayer> {
  const f = o.filtered;
  if (f.whole) throw new AirlockError('USAGE', `${o.image.name}: the filter keeps the whole catalog (full: true, no packages); there is nothing to rebuild, carry the catalog unchanged`);
  const root = o.catalog.configsDir.replace(/^\/+/, '');
  const pk = (p: string, n: string): string => `${p}\0${n}`;
  const packages = new Map(f.packages.map((p) => [p.name, p]));
  const channels = new Map(f.channels.map((c) => [pk(c.package, c.name), new Set(c.entries.map((e) => e.name))]));
  const bundles = new Set(f.bundles.map((b) => pk(b.package, b.name)));
  const deprecations = new Map(f.deprecations.map((d) => [d.package, new Set(d.entries.map((e) => `${e.schema}\0${e.name}`))]));

  const dir = await mkdtemp(path.join(o.scratchDir, 'airlock-catalog-'));
  const spoolPath = path.join(dir, 'spool');
  const fd = openSync(spoolPath, 'w');
  let spoolOffset = 0;
  let seq = 0;
  const spool = (order: Spooled['order'], bytes: Buffer): Spooled => {
    writeSync(fd, bytes, 0, bytes.length, spoolOffset);
    const s = { order, offset: spoolOffset, length: bytes.length };
    spoolOffset += bytes.length;
    return s;
  };
  try {
    const layers: LayerSource[] = o.image.manifest.layers.map((descriptor) => ({
      descriptor,
      open: () => o.image.blobs.fetch(descriptor, o.signal ? { signal: o.signal } : {}),
    }));
    const view = await readLayerView<Spooled[]>(layers, {
      root,
      ...(o.signal ? { signal: o.signal } : {}),
      parse(file) {
        const out: Spooled[] = [];
        const d = new MetaStreamDecoder({
          file: `/${root}/${file}`,
          onObject(obj, _i, raw) {
            const schema = schemaOf(obj);
            const str = (k: string): string => {
              const v = goField(obj, k);
              return typeof v === 'string' ? v : '';
            };
            const verbatim = (): Buffer => (raw !== undefined ? Buffer.concat([raw, Buffer.from('\n')]) : encodeOpm(obj));
            switch (schema) {
              case SCHEMA_PACKAGE: {
                const p = packages.get(str('name'));
                if (p) out.push(spool([p.name, RANK.package, '', seq++], encodeOpm(setField(obj, 'defaultChannel', p.defaultChannel))));
                return;
              }
              case SCHEMA_CHANNEL: {
                const keep = channels.get(pk(str('package'), str('name')));
                if (!keep) return;
                const entries = goField(obj, 'entries');
                const kept = (Array.isArray(entries) ? entries : []).filter((e) => {
                  const n = typeof e === 'object' && e !== null ? goField(e as Record<string, unknown>, 'name') : undefined;
                  return typeof n === 'string' && keep.has(n);
                });
                out.push(spool([str('package'), RANK.channel, str('name'), seq++], encodeOpm(setField(obj, 'entries', kept))));
                return;
              }
              case SCHEMA_BUNDLE:
                if (bundles.has(pk(str('package'), str('name')))) out.push(spool([str('package'), RANK.bundle, str('name'), seq++], verbatim()));
                return;
              case SCHEMA_DEPRECATIONS: {
                const keep = deprecations.get(str('package'));
                if (!keep) return;
                const entries = goField(obj, 'entries');
                const kept = (Array.isArray(entries) ? entries : []).filter((e) => {
                  if (typeof e !== 'object' || e === null) return false;
                  const ref = goField(e as Record<string, unknown>, 'reference');
                  const r = typeof ref === 'object' && ref !== null ? (ref as Record<string, unknown>) : {};
                  const s = goField(r, 'schema');
                  const n = goField(r, 'name');
                  return keep.has(`${typeof s === 'string' ? s : ''}\0${typeof n === 'string' ? n : ''}`);
                });
                out.push(spool([str('package'), RANK.deprecations, '', seq++], encodeOpm(setField(obj, 'entries', kept))));
                return;
              }
              default: {
                const p = str('package');
                if (p === '' || packages.has(p)) out.push(spool([p === '' ? ROOT_PKG : p, RANK.other, schema, seq++], verbatim()));
              }
            }
          },
        });
        return {
          write: (c) => d.write(c),
          end() {
            d.end();
            return out;
          },
        };
      },
    });
    closeSync(fd);
    const records = view.files.flatMap(([, s]) => s).sort((a, b) => compareOrder(a.order, b.order));
    // The catalog is read by digest, so the second pass must find exactly what the first kept.
    const count = (rank: number): number => records.filter((r) => r.order[1] === rank).length;
    if (count(RANK.package) !== f.packages.length || count(RANK.channel) !== f.channels.length || count(RANK.bundle) !== f.bundles.length) {
      throw catalogError('schema', `${o.image.name}: the catalog read a second time does not match the first read (packages ${count(RANK.package)}/${f.packages.length}, channels ${count(RANK.channel)}/${f.channels.length}, bundles ${count(RANK.bundle)}/${f.bundles.length})`);
    }
    const total = records.reduce((n, r) => n + r.length, 0);
    const layer = await writeLayer(root, spoolPath, records, total, o.out);
    return { ...layer, file: `/${root}/${FILTERED_CATALOG_FILE}`, catalogBytes: total, objects: records.length };
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    await rm(dir, { recursive: true, force: true });
  }
}

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

async function writeLayer(root: string, spoolPath: string, records: readonly Spooled[], total: number, out: Writable): Promise<{ descriptor: Descriptor; diffId: Digest }> {
  const tar = pack();
  tar.on('error', () => {}); // reaches us through the pipeline below
  const header = { mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
  const tarHash = new Hasher();
  const gzHash = new Hasher();
  const done = pipeline(Readable.from(tar as AsyncIterable<Buffer>), tarHash, createGzip({ level: FILTERED_LAYER_GZIP_LEVEL }), gzHash, out);
  done.catch(() => {});
  const fh = await open(spoolPath, 'r');
  try {
    await writeEntry(tar, { ...header, name: `${root}/`, type: 'directory', mode: 0o755 }, []);
    await writeEntry(tar, { ...header, name: `${root}/.wh..wh..opq`, type: 'file', mode: 0o644, size: 0 }, []);
    await writeEntry(
      tar,
      { ...header, name: `${root}/${FILTERED_CATALOG_FILE}`, type: 'file', mode: 0o644, size: total },
      (async function* () {
        for (const r of records) {
          const buf = Buffer.alloc(r.length);
          const { bytesRead } = await fh.read(buf, 0, r.length, r.offset);
          if (bytesRead !== r.length) throw new AirlockError('IO', `${spoolPath}: short read of the catalog spool`, { side: 'local' });
          yield buf;
        }
      })(),
    );
    tar.finalize();
    await done;
  } finally {
    await fh.close();
  }
  return {
    descriptor: { mediaType: MediaType.OciLayerGzip, digest: `sha256:${gzHash.hash.digest('hex')}` as Digest, size: gzHash.size },
    diffId: `sha256:${tarHash.hash.digest('hex')}` as Digest,
  };
}

type TarHeader = Parameters<ReturnType<typeof pack>['entry']>[0];

/** One tar entry, its body streamed with backpressure (streamx: end() takes no callback). */
async function writeEntry(tar: ReturnType<typeof pack>, h: TarHeader, body: AsyncIterable<Buffer> | Buffer[]): Promise<void> {
  let settle!: (err?: Error | null) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  done.catch(() => {});
  const sink = tar.entry(h, (err) => settle(err));
  sink.on('error', () => {});
  for await (const chunk of body) {
    if (!sink.write(chunk)) await new Promise<void>((resolve) => sink.once('drain', () => resolve()));
  }
  (sink as unknown as { end(): void }).end();
  await done;
}

// ---------------------------------------------------------------------------
// Config, manifest and index: pure functions over what was read and the new layer.

export interface FilteredImageInput {
  /** the original manifest, parsed from its exact bytes */
  readonly manifest: ImageManifest;
  readonly manifestDescriptor: Descriptor;
  /** the original config, parsed */
  readonly config: Record<string, unknown>;
  /** `/configs` */
  readonly configsDir: string;
  readonly layer: FilteredLayer;
  /** `registry/repository[:tag]` of the original, for the base.name annotation and history */
  readonly sourceName: string;
}

export interface BuiltBlob {
  readonly descriptor: Descriptor;
  readonly bytes: Buffer;
}

function describe(mediaType: string, bytes: Buffer): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.byteLength };
}

/** The command that serves the filtered catalog without the original's pre-built cache. */
export function filteredCommand(config: Record<string, unknown>, configsDir: string, name: string): { Cmd: string[] } {
  const inner = (config.config ?? {}) as Record<string, unknown>;
  const ep = Array.isArray(inner.Entrypoint) ? inner.Entrypoint : [];
  if (ep.length > 0) return { Cmd: ['serve', configsDir] };
  const cmd = Array.isArray(inner.Cmd) ? (inner.Cmd as unknown[]).map(String) : [];
  const i = cmd.indexOf('serve');
  if (i >= 0) return { Cmd: [...cmd.slice(0, i + 1), configsDir] };
  throw catalogError('schema', `${name}: cannot tell how the catalog image starts opm (no Entrypoint, and no "serve" in Cmd ${JSON.stringify(cmd)})`);
}

export function filteredImage(i: FilteredImageInput): { config: BuiltBlob; manifest: BuiltBlob } {
  const docker = i.manifestDescriptor.mediaType === MediaType.DockerManifest || i.manifest.mediaType === MediaType.DockerManifest;
  const cfg = JSON.parse(JSON.stringify(i.config)) as Record<string, unknown>;
  const inner = { ...((cfg.config ?? {}) as Record<string, unknown>), ...filteredCommand(cfg, i.configsDir, i.sourceName) };
  cfg.config = inner;
  const rootfs = (cfg.rootfs ?? { type: 'layers', diff_ids: [] }) as { type?: string; diff_ids?: string[] };
  const diffIds = Array.isArray(rootfs.diff_ids) ? [...rootfs.diff_ids] : [];
  if (diffIds.length !== i.manifest.layers.length) {
    throw catalogError('schema', `${i.sourceName}: the config lists ${diffIds.length} diff_ids for ${i.manifest.layers.length} layers`);
  }
  cfg.rootfs = { ...rootfs, type: 'layers', diff_ids: [...diffIds, i.layer.diffId] };
  const history = Array.isArray(cfg.history) ? [...(cfg.history as unknown[])] : [];
  history.push({
    ...(typeof cfg.created === 'string' ? { created: cfg.created } : {}),
    created_by: `airlock: filtered file-based catalog of ${i.sourceName}@${i.manifestDescriptor.digest} in ${i.layer.file}; CMD serve ${i.configsDir}`,
    comment: 'not signed by the catalog vendor',
  });
  cfg.history = history;
  const configBytes = encodeJson(cfg);
  const config = describe(docker ? MediaType.DockerConfig : (i.manifest.config.mediaType || MediaType.OciConfig), configBytes);
  const layerDesc: Descriptor = { ...i.layer.descriptor, mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip };
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: [...i.manifest.layers, layerDesc],
  };
  if (!docker) {
    m.annotations = {
      ...(i.manifest.annotations ?? {}),
      'org.opencontainers.image.base.digest': i.manifestDescriptor.digest,
      'org.opencontainers.image.base.name': i.sourceName,
    };
  }
  const manifestBytes = encodeJson(m);
  return {
    config: { descriptor: config, bytes: configBytes },
    manifest: { descriptor: describe(m.mediaType as string, manifestBytes), bytes: manifestBytes },
  };
}

/**
 * A multi-platform filtered catalog: the original index with each child replaced by
 * its filtered image (same platform, same order); annotations kept.
 */
export function filteredIndex(index: ImageIndex, indexDescriptor: Descriptor, children: ReadonlyMap<string, Descriptor>): BuiltBlob {
  const manifests = index.manifests.map((d) => {
    const n = children.get(d.digest);
    if (n === undefined) throw new AirlockError('INTERNAL', `no filtered image for index child ${d.digest}`);
    return { ...d, mediaType: n.mediaType, digest: n.digest, size: n.size };
  });
  const mediaType = indexDescriptor.mediaType === MediaType.DockerManifestList ? MediaType.DockerManifestList : MediaType.OciIndex;
  const out: Record<string, unknown> = { schemaVersion: 2, mediaType, manifests };
  if (mediaType === MediaType.OciIndex) out.annotations = { ...(index.annotations ?? {}), 'org.opencontainers.image.base.digest': indexDescriptor.digest };
  const bytes = encodeJson(out);
  return { descriptor: describe(mediaType, bytes), bytes };
}

