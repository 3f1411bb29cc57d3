import { fetchBytes } from '../../content/read.js';
import type { Fetcher, OpOptions } from '../../content/storage.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../../oci/manifest.js';
import { catalogError } from './errors.js';
import { CatalogBuilder, reduceObject, schemaOf, type CatalogStats, type FbcCatalog, type FbcRecord } from './fbc.js';
import { readLayerView, type LayerSource } from './layers.js';
import { MetaStreamDecoder } from './meta-stream.js';

/** The label that names the file-based catalog's directory (opm's generated Dockerfile sets `/configs`). */
export const CATALOG_CONFIGS_LABEL = 'operators.operatorframework.io.index.configs.v1';

/** A catalog image to read: its manifest (parsed from the exact bytes) and where its blobs come from. */
export interface CatalogImage {
  readonly manifest: ImageManifest;
  /** blobs of the image; every read is checked against its descriptor (content/ Fetcher contract) */
  readonly blobs: Fetcher;
  /** names the image in messages: `registry.redhat.io/redhat/redhat-operator-index@sha256:…` */
  readonly name: string;
}

export interface ReadCatalogOptions extends OpOptions {
  /** refuse a single catalog object larger than this (bytes); default 64 MiB */
  readonly maxObjectBytes?: number;
}

/** The reduced catalog, with where it was read from and what was seen. */
export interface LoadedCatalog extends FbcCatalog {
  /** the configs directory as the label names it, normalised: `/configs` */
  readonly configsDir: string;
  readonly stats: CatalogStats;
  /** the image config, as parsed (the filtered-image builder starts from it) */
  readonly config: Record<string, unknown>;
  /** the exact config bytes' descriptor */
  readonly configDescriptor: Descriptor;
}

/**
 * The catalog's directory from its config's label, normalised to `configs` (no
 * slashes at the ends). A config without the label is not a file-based catalog: one
 * `no-label` error (old SQLite index images are not file-based; oc-mirror v2 cannot
 * mirror them either).
 */
export function configsDirFromConfig(config: Record<string, unknown>, name: string): string {
  const inner = config.config;
  const labels = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>).Labels : undefined;
  const v = typeof labels === 'object' && labels !== null ? (labels as Record<string, unknown>)[CATALOG_CONFIGS_LABEL] : undefined;
  if (typeof v !== 'string' || v.trim() === '') {
    throw catalogError(
      'no-label',
      `${name} is not a file-based operator catalog: its image config has no ${CATALOG_CONFIGS_LABEL} label naming the catalog directory (SQLite-based index images from before OpenShift 4.11 are not supported); check the catalog reference`,
      { image: name },
    );
  }
  const parts = v.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw catalogError('no-label', `${name}: the ${CATALOG_CONFIGS_LABEL} label "${v}" has a ".." component`, { image: name });
  return parts.join('/');
}

/** Parse an image config blob (JSON object) or fail as a catalog `schema` error. */
export function parseImageConfig(bytes: Uint8Array, name: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw catalogError('schema', `${name}: the image config is not JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw catalogError('schema', `${name}: the image config is not a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * Which manifest of a multi-platform catalog to read: linux/amd64 when listed, else
 * the first image. Red Hat ships the same catalog content for every architecture.
 */
export function selectCatalogManifest(index: ImageIndex): Descriptor {
  const images = index.manifests.filter((d) => d.platform !== undefined || !d.mediaType.includes('index'));
  const amd = images.find((d) => d.platform?.os === 'linux' && d.platform.architecture === 'amd64');
  const pick = amd ?? images[0];
  if (pick === undefined) throw catalogError('layer', 'the catalog index lists no image manifest');
  return pick;
}

/** What one file contributed: its reduced objects and the number of objects per schema. */
interface FileRecords {
  readonly records: readonly FbcRecord[];
  readonly counts: Readonly<Record<string, number>>;
}

/**
 * Read a catalog image's file-based catalog: the label names the directory; the layers
 * are streamed in order into the final filesystem view; every file there not left out
 * by `.indexignore` is decoded as a JSON or YAML object stream; each object is reduced
 * (fbc.ts) on the fly. Memory: the reduced catalog plus one object at a time.
 */
export async function readFileBasedCatalog(image: CatalogImage, opts: ReadCatalogOptions = {}): Promise<LoadedCatalog> {
  const op: OpOptions = opts.signal ? { signal: opts.signal } : {};
  const configBytes = await fetchBytes(image.blobs, image.manifest.config, { ...op, what: `config of ${image.name}`, side: 'source' });
  const config = parseImageConfig(configBytes, image.name);
  const root = configsDirFromConfig(config, image.name);
  const stats: CatalogStats = { files: 0, objects: 0, bySchema: {}, ignoredFiles: 0 };
  const layers: LayerSource[] = image.manifest.layers.map((descriptor) => ({ descriptor, open: () => image.blobs.fetch(descriptor, op) }));
  const view = await readLayerView<FileRecords>(layers, {
    root,
    ...(opts.signal ? { signal: opts.signal } : {}),
    parse(path) {
      const records: FbcRecord[] = [];
      const counts: Record<string, number> = {};
      const d = new MetaStreamDecoder({
        file: `/${root}/${path}`,
        ...(opts.maxObjectBytes !== undefined ? { maxObjectBytes: opts.maxObjectBytes } : {}),
        onObject(o, i) {
          const schema = schemaOf(o);
          counts[schema] = (counts[schema] ?? 0) + 1;
          records.push(reduceObject(o, `catalog file /${root}/${path}, object ${i + 1}`));
        },
      });
      return {
        write: (c) => d.write(c),
        end() {
          d.end();
          return { records, counts };
        },
      };
    },
  });
  if (!view.rootFound) {
    throw catalogError('no-label', `${image.name}: the ${CATALOG_CONFIGS_LABEL} label names /${root}, which is not a directory in the image's layers`, { image: image.name });
  }
  const builder = new CatalogBuilder();
  // counted only for the files that are in the final view
  for (const [path, { records, counts }] of view.files) {
    stats.files++;
    for (const [k, n] of Object.entries(counts)) {
      stats.bySchema[k] = (stats.bySchema[k] ?? 0) + n;
      stats.objects += n;
    }
    records.forEach((r, i) => builder.add(r, `catalog file /${root}/${path}, object ${i + 1}`));
  }
  stats.ignoredFiles = view.ignored.length;
  const catalog = builder.build();
  return Object.freeze({ ...catalog, configsDir: `/${root}`, stats, config, configDescriptor: image.manifest.config });
}
