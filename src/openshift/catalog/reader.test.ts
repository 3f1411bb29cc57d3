import { beforeAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../../test/support/openshift-catalog/layer.js';
import { buildCatalogScenario, type CatalogScenario } from '../../../test/support/openshift-catalog/scenario.js';
import { AirlockError, ExitCode, exitCodeFor } from '../../errors.js';
import { parseManifest, type ImageManifest } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { CATALOG_CONFIGS_LABEL, readFileBasedCatalog, selectCatalogManifest, type CatalogImage } from './reader.js';

const HOST = 'registry.test:5000';
let sc: CatalogScenario;
let image: CatalogImage;

beforeAll(async () => {
  sc = await buildCatalogScenario({ host: HOST });
  image = { manifest: parseManifest(sc.catalog.manifestBytes) as ImageManifest, blobs: sc.catalog.store, name: `${HOST}/${sc.catalogRepository}:v1` };
});

describe('readFileBasedCatalog', () => {
  describe('when the catalog spans layers, JSON and YAML', () => {
    it('reads the final filesystem view: replaced, whited-out, opaque and ignored files handled', async () => {
      const c = await readFileBasedCatalog(image);
      expect(c.configsDir).toBe('/configs');
      // delta was deleted by .wh.delta; gamma's stale file hidden by the opaque marker; alpha's old file replaced
      expect(c.packages).toEqual([
        { name: 'alpha', defaultChannel: 'stable' },
        { name: 'beta', defaultChannel: 'stable' },
        { name: 'gamma', defaultChannel: 'preview' },
      ]);
      expect(c.channels.map((ch) => `${ch.package}/${ch.name}`)).toEqual(['alpha/fast', 'alpha/stable', 'beta/stable', 'beta/candidate', 'gamma/preview']);
      expect(c.bundles.map((b) => b.name)).toEqual([
        'alpha.v1.0.0',
        'alpha.v1.1.0',
        'alpha.v1.1.1',
        'alpha.v1.2.0',
        'alpha.v1.3.0-rc.1',
        'beta.v2.0.0',
        'beta.v2.1.0',
        'beta.v2.2.0',
        'gamma.v0.1.0',
      ]);
      // README.md would not parse: .indexignore left it out
      expect(c.stats).toEqual({ files: 3, objects: 19, ignoredFiles: 1, bySchema: { 'olm.package': 3, 'olm.channel': 5, 'olm.bundle': 9, 'olm.deprecations': 1, 'com.example.note': 1 } });
    });

    it('keeps only what the filter needs of each bundle', async () => {
      const c = await readFileBasedCatalog(image);
      const b = c.bundles.find((x) => x.name === 'alpha.v1.1.1')!;
      expect(b).toEqual({
        package: 'alpha',
        name: 'alpha.v1.1.1',
        version: '1.1.1',
        image: sc.bundleImages.get('alpha.v1.1.1')!.ref,
        relatedImages: [
          { name: '', image: sc.bundleImages.get('alpha.v1.1.1')!.ref },
          { name: 'operator', image: sc.operatorImages.get('alpha.v1.1.1')!.ref },
        ],
      });
      expect(c.channels.find((x) => x.name === 'stable' && x.package === 'beta')!.entries[1]).toEqual({ name: 'beta.v2.1.0', replaces: 'beta.v2.0.0', skips: [], skipRange: '>=1.0.0 <2.1.0' });
      expect(c.deprecations).toEqual([
        {
          package: 'beta',
          entries: [
            { schema: 'olm.channel', name: 'candidate', message: 'candidate is retired' },
            { schema: 'olm.bundle', name: 'beta.v2.0.0', message: 'beta 2.0.0 has a CVE' },
            { schema: 'olm.package', name: '', message: 'beta is deprecated; use gamma' },
          ],
        },
      ]);
      expect(c.others).toEqual([{ schema: 'com.example.note', package: 'gamma', name: 'gamma-note' }]);
    });
  });

  describe('when the image has no catalog label', () => {
    it('fails with one clear line', async () => {
      const plain = await buildImage([[{ name: 'configs/a.json', body: '{}' }]], { entrypoint: ['/bin/opm'] });
      const err = await readFileBasedCatalog({ manifest: parseManifest(plain.manifestBytes) as ImageManifest, blobs: plain.store, name: 'quay.io/x/index:v4.10' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AirlockError);
      expect((err as AirlockError).detail?.catalog).toBe('no-label');
      expect(exitCodeFor(err)).toBe(ExitCode.FAILURE);
      expect((err as AirlockError).message).toBe(
        `quay.io/x/index:v4.10 is not a file-based operator catalog: its image config has no ${CATALOG_CONFIGS_LABEL} label naming the catalog directory (SQLite-based index images from before OpenShift 4.11 are not supported); check the catalog reference`,
      );
    });
    it('fails when the label names a directory the layers do not have', async () => {
      const img = await buildImage([[{ name: 'other/a.json', body: '{}' }]], { labels: { [CATALOG_CONFIGS_LABEL]: '/configs' } });
      await expect(readFileBasedCatalog({ manifest: parseManifest(img.manifestBytes) as ImageManifest, blobs: img.store, name: 'x' })).rejects.toThrow(
        'x: the operators.operatorframework.io.index.configs.v1 label names /configs, which is not a directory in the image\'s layers',
      );
    });
  });

  describe('when a catalog file breaks the schemas', () => {
    const bad = async (body: string): Promise<string> => {
      const img = await buildImage([[{ name: 'configs/p/catalog.json', body }]], { labels: { [CATALOG_CONFIGS_LABEL]: 'configs' } });
      const e = await readFileBasedCatalog({ manifest: parseManifest(img.manifestBytes) as ImageManifest, blobs: img.store, name: 'x' }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(AirlockError);
      return (e as AirlockError).message;
    };
    it.each([
      ['an object without schema', '{"name":"p"}', 'catalog file /configs/p/catalog.json, object 1: the object has no "schema" field'],
      ['a duplicate package', '{"schema":"olm.package","name":"p"}{"schema":"olm.package","name":"p"}', 'catalog file /configs/p/catalog.json, object 2: package "p" is defined twice'],
      ['a channel of an unknown package', '{"schema":"olm.channel","package":"q","name":"s"}', 'channel "s" belongs to package "q", which the catalog does not define'],
      ['keys that collide under case folding', '{"schema":"olm.package","name":"p","Name":"q"}', 'catalog file /configs/p/catalog.json, object 1: duplicate keys "name" and "Name"'],
      ['entries that are not a list', '{"schema":"olm.package","name":"p"}{"schema":"olm.channel","package":"p","name":"s","entries":{}}', 'catalog file /configs/p/catalog.json, object 2 (channel "s"): "entries" must be a list'],
    ])('refuses %s', async (_w, body, msg) => {
      expect(await bad(body)).toBe(msg);
    });
    it('reads keys the way Go does, case-insensitively', async () => {
      const img = await buildImage([[{ name: 'configs/p.json', body: '{"Schema":"olm.package","NAME":"p","defaultchannel":"s"}' }]], { labels: { [CATALOG_CONFIGS_LABEL]: '/configs/' } });
      const c = await readFileBasedCatalog({ manifest: parseManifest(img.manifestBytes) as ImageManifest, blobs: img.store, name: 'x' });
      expect(c.packages).toEqual([{ name: 'p', defaultChannel: 's' }]);
    });
  });

  describe('when the catalog uses Docker media types or is multi-platform', () => {
    it('reads Docker schema 2 gzip layers', async () => {
      const img = await buildImage([[{ name: 'configs/p.json', body: '{"schema":"olm.package","name":"p","defaultChannel":"s"}' }]], { docker: true, labels: { [CATALOG_CONFIGS_LABEL]: '/configs' } });
      const m = parseManifest(img.manifestBytes) as ImageManifest;
      expect(m.layers[0]!.mediaType).toBe(MediaType.DockerLayerGzip);
      expect((await readFileBasedCatalog({ manifest: m, blobs: img.store, name: 'x' })).packages).toEqual([{ name: 'p', defaultChannel: 's' }]);
    });
    it('picks linux/amd64 from an index, else the first image', () => {
      const d = (arch: string) => ({ mediaType: MediaType.OciManifest, digest: `sha256:${arch.padEnd(64, '0').replace(/[^0-9a-f]/g, '0')}` as never, size: 1, platform: { os: 'linux', architecture: arch } });
      expect(selectCatalogManifest({ schemaVersion: 2, manifests: [d('arm64'), d('amd64')] }).platform?.architecture).toBe('amd64');
      expect(selectCatalogManifest({ schemaVersion: 2, manifests: [d('s390x'), d('arm64')] }).platform?.architecture).toBe('s390x');
    });
  });
});
