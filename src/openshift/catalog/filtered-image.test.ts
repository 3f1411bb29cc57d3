import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCatalogScenario, type CatalogScenario } from '../../../test/support/openshift-catalog/scenario.js';
import { parseOperators } from '../../config/openshift-operators.js';
import { parseYaml } from '../../config/yaml-node.js';
import { MemoryStore } from '../../content/memory.js';
import { digestOf } from '../../oci/digest.js';
import { parseManifest, type ImageIndex, type ImageManifest } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { filterCatalog, type FilteredCatalog } from './filter.js';
import { buildFilteredLayer, filteredImage, filteredIndex, type FilteredLayer } from './filtered-image.js';
import { readFileBasedCatalog, type CatalogImage, type LoadedCatalog } from './reader.js';

const HOST = 'registry.test:5000';
let sc: CatalogScenario;
let image: CatalogImage;
let catalog: LoadedCatalog;
let filtered: FilteredCatalog;
let scratch: string;

const FILTER = [
  '  packages:',
  '  - name: alpha',
  '    channels:',
  '    - name: stable',
  '      minVersion: 1.1.0',
  '      maxVersion: 1.1.1',
  '  - name: beta',
  '    defaultChannel: candidate',
  '    channels:',
  '    - name: candidate',
  '',
].join('\n');

function filterOf(body: string, c: LoadedCatalog): FilteredCatalog {
  const op = parseOperators(parseYaml(`operators:\n- catalog: ${HOST}/operators/test-catalog:v1\n${body}`, 'isc.yaml').map(['operators']).get('operators')!).operators[0]!;
  return filterCatalog(c, op);
}

class Sink extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.chunks.push(c);
    cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function build(f: FilteredCatalog = filtered): Promise<{ layer: FilteredLayer; bytes: Buffer }> {
  const out = new Sink();
  const layer = await buildFilteredLayer({ image, catalog, filtered: f, scratchDir: scratch, out });
  return { layer, bytes: out.bytes };
}

async function tarEntries(gz: Buffer): Promise<{ name: string; type: string; mode: number; mtime: number; uid: number; body: string }[]> {
  const ex = extract();
  const out: { name: string; type: string; mode: number; mtime: number; uid: number; body: string }[] = [];
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.push({ name: e.header.name, type: e.header.type, mode: e.header.mode, mtime: e.header.mtime.getTime(), uid: e.header.uid, body: Buffer.concat(chunks).toString('utf8') });
    }
  })();
  ex.end(gunzipSync(gz));
  await done;
  return out;
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'airlock-filtered-'));
  sc = await buildCatalogScenario({ host: HOST });
  image = { manifest: parseManifest(sc.catalog.manifestBytes) as ImageManifest, blobs: sc.catalog.store, name: `${HOST}/${sc.catalogRepository}:v1` };
  catalog = await readFileBasedCatalog(image);
  filtered = filterOf(FILTER, catalog);
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('buildFilteredLayer', () => {
  it('is deterministic: the same catalog and filter give the same bytes and digests', async () => {
    const a = await build();
    const b = await build();
    expect(b.layer).toEqual(a.layer);
    expect(b.bytes.equals(a.bytes)).toBe(true);
    expect(a.layer.descriptor).toEqual({ mediaType: MediaType.OciLayerGzip, digest: digestOf(a.bytes), size: a.bytes.length });
    expect(a.layer.diffId).toBe(digestOf(gunzipSync(a.bytes)));
    // the spool is gone
    expect(await readdir(scratch)).toEqual([]);
  });

  it('holds the opaque directory and one catalog file, with fixed owners, modes and times', async () => {
    const { bytes } = await build();
    const entries = await tarEntries(bytes);
    expect(entries.map((e) => [e.name, e.type, e.mode.toString(8), e.mtime, e.uid])).toEqual([
      ['configs/', 'directory', '755', 0, 0],
      ['configs/.wh..wh..opq', 'file', '644', 0, 0],
      ['configs/catalog.json', 'file', '644', 0, 0],
    ]);
  });

  it('writes the filtered catalog in opm order, bundles byte for byte', async () => {
    const { bytes } = await build();
    const json = (await tarEntries(bytes))[2]!.body;
    const objs = json
      .split(/\n(?=\{)/)
      .map((s) => JSON.parse(s) as Record<string, unknown>)
      .map((o) => [o.schema, o.package ?? o.name, o.schema === 'olm.package' ? o.defaultChannel : o.name]);
    expect(objs).toEqual([
      ['olm.package', 'alpha', 'stable'],
      ['olm.channel', 'alpha', 'stable'],
      ['olm.bundle', 'alpha', 'alpha.v1.1.0'],
      ['olm.bundle', 'alpha', 'alpha.v1.1.1'],
      ['olm.bundle', 'alpha', 'alpha.v1.2.0'],
      ['olm.package', 'beta', 'candidate'],
      ['olm.channel', 'beta', 'candidate'],
      ['olm.bundle', 'beta', 'beta.v2.2.0'],
      ['olm.deprecations', 'beta', undefined],
    ]);
    // alpha's file is JSON: each kept bundle is its original text
    const original = (await sc.catalog.store.bytes(sc.catalog.layers[2]!.descriptor.digest))!;
    const layerText = gunzipSync(original).toString('utf8');
    const start = layerText.indexOf('{\n    "schema": "olm.bundle",\n    "name": "alpha.v1.1.0"');
    const end = layerText.indexOf('\n}\n', start) + 2;
    expect(json).toContain(layerText.slice(start, end));
  });

  it('reads back, through the original layers, as exactly the filtered catalog', async () => {
    const { layer, bytes } = await build();
    const store = new MemoryStore();
    for (const l of sc.catalog.layers) await store.push(l.descriptor, l.bytes);
    await store.push(layer.descriptor, bytes);
    const img = filteredImage({ manifest: image.manifest, manifestDescriptor: sc.catalog.manifest, config: catalog.config, configsDir: catalog.configsDir, layer, sourceName: image.name });
    await store.push(img.config.descriptor, img.config.bytes);
    await store.push(img.manifest.descriptor, img.manifest.bytes);
    const again = await readFileBasedCatalog({ manifest: parseManifest(img.manifest.bytes) as ImageManifest, blobs: store, name: 'filtered' });
    expect(again.packages).toEqual(filtered.packages);
    expect(again.channels).toEqual(filtered.channels);
    expect(again.bundles).toEqual(filtered.bundles);
    expect(again.deprecations).toEqual(filtered.deprecations);
    expect(again.stats.files).toBe(1);
    // what opm would serve: every channel has its one head, the default channel exists
    expect(filterOf('', again).bundles.map((b) => b.name)).toEqual(['alpha.v1.2.0', 'beta.v2.2.0']);
  });
});

describe('filteredImage', () => {
  it('keeps the original config and layers, serves the new catalog without the stale cache, and is deterministic', async () => {
    const { layer } = await build();
    const input = { manifest: image.manifest, manifestDescriptor: sc.catalog.manifest, config: catalog.config, configsDir: catalog.configsDir, layer, sourceName: image.name };
    const a = filteredImage(input);
    const b = filteredImage(input);
    expect(b.manifest.descriptor).toEqual(a.manifest.descriptor);
    expect(b.config.bytes.equals(a.config.bytes)).toBe(true);
    const cfg = JSON.parse(a.config.bytes.toString()) as { config: Record<string, unknown>; rootfs: { diff_ids: string[] }; history: { created_by: string; comment?: string }[] };
    expect(cfg.config.Entrypoint).toEqual(['/bin/opm']);
    expect(cfg.config.Cmd).toEqual(['serve', '/configs']);
    expect(cfg.config.Labels).toEqual((catalog.config.config as Record<string, unknown>).Labels);
    expect(cfg.rootfs.diff_ids).toEqual([...sc.catalog.layers.map((l) => l.diffId), layer.diffId]);
    expect(cfg.history.at(-1)!.comment).toBe('not signed by the catalog vendor');
    const m = parseManifest(a.manifest.bytes) as ImageManifest;
    expect(m.layers).toEqual([...sc.catalog.layers.map((l) => l.descriptor), layer.descriptor]);
    expect(m.annotations).toEqual({ 'org.opencontainers.image.base.digest': sc.catalog.manifest.digest, 'org.opencontainers.image.base.name': image.name });
    expect(a.manifest.descriptor.digest).not.toBe(sc.catalog.manifest.digest);
  });

  it('keeps Docker media types for a Docker catalog', async () => {
    const { layer } = await build();
    const dockerManifest = { ...image.manifest, mediaType: MediaType.DockerManifest };
    const d = filteredImage({ manifest: dockerManifest, manifestDescriptor: { ...sc.catalog.manifest, mediaType: MediaType.DockerManifest }, config: catalog.config, configsDir: '/configs', layer, sourceName: image.name });
    const m = parseManifest(d.manifest.bytes) as ImageManifest & { annotations?: unknown };
    expect([m.mediaType, m.config.mediaType, m.layers.at(-1)!.mediaType, m.annotations]).toEqual([MediaType.DockerManifest, MediaType.DockerConfig, MediaType.DockerLayerGzip, undefined]);
  });

  it('wraps per-platform filtered images in an index of the same shape', () => {
    const child = { mediaType: MediaType.OciManifest, digest: sc.catalog.manifest.digest, size: 10, platform: { os: 'linux', architecture: 'amd64' } };
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [child] };
    const indexDesc = { mediaType: MediaType.OciIndex, digest: digestOf(Buffer.from('x')), size: 1 };
    const replaced = { mediaType: MediaType.OciManifest, digest: digestOf(Buffer.from('y')), size: 99 };
    const a = filteredIndex(index, indexDesc, new Map([[child.digest, replaced]]));
    expect(filteredIndex(index, indexDesc, new Map([[child.digest, replaced]])).descriptor).toEqual(a.descriptor);
    expect((parseManifest(a.bytes) as ImageIndex).manifests).toEqual([{ ...child, digest: replaced.digest, size: 99 }]);
  });
});

describe('buildFilteredLayer, when nothing is filtered', () => {
  it('refuses: the catalog is carried unchanged', async () => {
    await expect(build(filterOf('  full: true\n', catalog))).rejects.toThrow(/keeps the whole catalog/);
  });
});
