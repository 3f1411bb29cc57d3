import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { catalogResources, operatorMirrorSets, type MirroredCatalog } from '../src/cluster/openshift-catalog.js';
import { parseOperators } from '../src/config/openshift-operators.js';
import { parseYaml } from '../src/config/yaml-node.js';
import { fetchBytes } from '../src/content/read.js';
import { AirlockError } from '../src/errors.js';
import { parseManifest, type ImageManifest } from '../src/oci/manifest.js';
import { Reference } from '../src/oci/reference.js';
import { cosignTag } from '../src/oci/referrers.js';
import { collectOperatorImages } from '../src/openshift/catalog/collect.js';
import { filterCatalog, type FilteredCatalog } from '../src/openshift/catalog/filter.js';
import { buildFilteredLayer, filteredImage } from '../src/openshift/catalog/filtered-image.js';
import { readFileBasedCatalog, type CatalogImage, type LoadedCatalog } from '../src/openshift/catalog/reader.js';
import { RegistryClient } from '../src/registry/client.js';
import type { Repository } from '../src/registry/repository.js';
import { verifyBlob } from './support/cosign.js';
import { checkAgainst, crdSchema } from './support/openshift-catalog/crd-check.js';
import { buildImage } from './support/openshift-catalog/layer.js';
import { buildCatalogScenario, type CatalogScenario } from './support/openshift-catalog/scenario.js';
import { startRegistry, type TestRegistry } from './support/registries.js';

/**
 * Operator catalogs against a real registry (Debian's Distribution 2.8): the rig's
 * catalog image and its signed bundle and operator images are pushed by digest; the
 * catalog is read back through the registry client, filtered, its images collected and
 * checked in the registry, the filtered image built (twice) and pushed, and the cluster
 * resources validated against the operator-framework and OpenShift CRDs.
 */
let reg: TestRegistry;
let client: RegistryClient;
let sc: CatalogScenario;
let scratch: string;
let catalogRepo: Repository;
let image: CatalogImage;
let catalog: LoadedCatalog;

function operator(body: string) {
  const yaml = `operators:\n- catalog: ${reg.host}/${sc.catalogRepository}:v1\n${body}`;
  return parseOperators(parseYaml(yaml, 'isc.yaml').map(['operators']).get('operators')!).operators[0]!;
}
const run = (body: string): FilteredCatalog => filterCatalog(catalog, operator(body));

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'airlock-catalog-e2e-'));
  reg = await startRegistry('distribution');
  client = new RegistryClient({ plainHttp: () => true });
  sc = await buildCatalogScenario({ host: reg.host });
  await sc.push((repo) => client.repository(reg.host, repo));
  catalogRepo = client.repository(reg.host, sc.catalogRepository);
  const { desc, bytes } = await catalogRepo.fetchManifest('v1');
  expect(desc.digest).toBe(sc.catalog.manifest.digest);
  image = { manifest: parseManifest(bytes, { mediaType: desc.mediaType }) as ImageManifest, blobs: catalogRepo, name: `${reg.host}/${sc.catalogRepository}:v1` };
  catalog = await readFileBasedCatalog(image);
}, 120_000);

afterAll(async () => {
  await client?.close();
  await reg?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('an operator catalog in a registry', () => {
  it('is read through the registry client, layers streamed and verified', () => {
    expect(catalog.packages.map((p) => p.name)).toEqual(['alpha', 'beta', 'gamma']);
    expect(catalog.bundles).toHaveLength(9);
    expect(catalog.stats.ignoredFiles).toBe(1);
  });

  it('carries the signature of the catalog image itself', async () => {
    const sig = await catalogRepo.fetchManifest(cosignTag(sc.catalog.manifest.digest, 'sig'));
    const m = parseManifest(sig.bytes) as ImageManifest;
    const payload = await fetchBytes(catalogRepo, m.layers[0]!);
    expect(JSON.parse(payload.toString()).critical.image['docker-manifest-digest']).toBe(sc.catalog.manifest.digest);
    expect(verifyBlob(sc.signingKey.publicKey, payload, Buffer.from(m.layers[0]!.annotations!['dev.cosignproject.cosign/signature']!, 'base64'))).toBe(true);
  });

  describe('filtered by each rule', () => {
    // [rule, ImageSetConfiguration fragment, expected bundles]
    it.each([
      ['no packages: the head of every channel', '', ['alpha.v1.2.0', 'alpha.v1.3.0-rc.1', 'beta.v2.1.0', 'beta.v2.2.0', 'gamma.v0.1.0']],
      ['a package without channels: the head of each of its channels', '  packages:\n  - name: alpha\n', ['alpha.v1.2.0', 'alpha.v1.3.0-rc.1']],
      ['a listed channel: its head', '  packages:\n  - name: beta\n    channels:\n    - name: stable\n', ['beta.v2.1.0']],
      [
        'a channel range: the chain between the new head and tail',
        '  packages:\n  - name: alpha\n    channels:\n    - name: stable\n      minVersion: 1.1.0\n      maxVersion: 1.1.1\n',
        ['alpha.v1.1.0', 'alpha.v1.1.1', 'alpha.v1.2.0'],
      ],
      ['a package range over every channel', '  packages:\n  - name: alpha\n    maxVersion: 1.1.0\n', ['alpha.v1.0.0', 'alpha.v1.1.0']],
      ['full with a package', '  full: true\n  packages:\n  - name: beta\n', ['beta.v2.0.0', 'beta.v2.1.0', 'beta.v2.2.0']],
      ['selected bundles', '  packages:\n  - name: alpha\n    selectedBundles:\n    - name: alpha.v1.1.0\n    - name: alpha.v1.2.0\n', ['alpha.v1.1.0', 'alpha.v1.2.0']],
      ['a new default channel', '  packages:\n  - name: beta\n    defaultChannel: candidate\n    channels:\n    - name: candidate\n', ['beta.v2.2.0']],
    ])('%s', (_rule, body, expected) => {
      expect(run(body).bundles.map((b) => b.name)).toEqual(expected);
    });

    it('refuses, in one line, to lose the default channel', () => {
      expect(() => run('  packages:\n  - name: beta\n    channels:\n    - name: candidate\n')).toThrow(
        'isc.yaml:4: package "beta": the filter removes its default channel "stable"; set defaultChannel to one of the channels left (candidate)',
      );
    });
  });

  it('collects every selected bundle image and related image, by digest, each present and signed in the registry', async () => {
    const f = run('  packages:\n  - name: alpha\n    channels:\n    - name: stable\n      minVersion: 1.1.0\n      maxVersion: 1.1.1\n');
    const { images, skipped } = collectOperatorImages(f.bundles);
    expect(skipped).toEqual([]);
    const expected = [
      sc.bundleImages.get('alpha.v1.1.0')!.ref,
      sc.bundleImages.get('alpha.v1.1.1')!.ref,
      sc.bundleImages.get('alpha.v1.2.0')!.ref,
      sc.operatorImages.get('alpha.v1.1.0')!.ref, // shared by 1.1.0 and 1.1.1
      sc.operatorImages.get('alpha.v1.2.0')!.ref,
    ].sort();
    expect(images.map((i) => i.written)).toEqual(expected);
    expect(images.find((i) => i.written === sc.operatorImages.get('alpha.v1.1.0')!.ref)!.usedBy).toEqual(['alpha/alpha.v1.1.0', 'alpha/alpha.v1.1.1']);
    for (const im of images) {
      expect(im.digest).toBeDefined();
      const repo = client.repository(im.reference.registry, im.reference.repository);
      expect((await repo.resolve(im.digest!)).digest).toBe(im.digest);
      const sig = parseManifest((await repo.fetchManifest(cosignTag(im.digest!, 'sig'))).bytes) as ImageManifest;
      const payload = await fetchBytes(repo, sig.layers[0]!);
      expect(verifyBlob(sc.signingKey.publicKey, payload, Buffer.from(sig.layers[0]!.annotations!['dev.cosignproject.cosign/signature']!, 'base64'))).toBe(true);
    }
  });

  describe('the opt-in filtered catalog image', () => {
    const body = '  targetCatalog: mirror/test-catalog-small\n  targetTag: v1-small\n  packages:\n  - name: alpha\n  - name: gamma\n';
    class Sink extends Writable {
      readonly chunks: Buffer[] = [];
      override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
        this.chunks.push(c);
        cb();
      }
    }
    const buildOnce = async () => {
      const f = filterCatalog(catalog, operator(body));
      const out = new Sink();
      const layer = await buildFilteredLayer({ image, catalog, filtered: f, scratchDir: scratch, out });
      const built = filteredImage({ manifest: image.manifest, manifestDescriptor: sc.catalog.manifest, config: catalog.config, configsDir: catalog.configsDir, layer, sourceName: image.name });
      return { f, layer, layerBytes: Buffer.concat(out.chunks), ...built };
    };

    it('is built deterministically from the registry copy, pushed, and serves exactly the filtered catalog', async () => {
      const a = await buildOnce();
      const b = await buildOnce();
      expect(b.layer.descriptor).toEqual(a.layer.descriptor);
      expect(b.config.descriptor).toEqual(a.config.descriptor);
      expect(b.manifest.descriptor).toEqual(a.manifest.descriptor);

      const op = operator(body);
      const target = client.repository(reg.host, op.target!.repository!);
      for (const l of image.manifest.layers) await target.push(l, await catalogRepo.fetch(l));
      await target.push(a.layer.descriptor, a.layerBytes);
      await target.push(a.config.descriptor, a.config.bytes);
      await target.push(a.manifest.descriptor, a.manifest.bytes);
      await target.tag(a.manifest.descriptor, a.manifest.bytes, op.target!.tag!);
      const pulled = await target.fetchManifest(op.target!.tag!);
      expect(pulled.desc.digest).toBe(a.manifest.descriptor.digest);
      const again = await readFileBasedCatalog({ manifest: parseManifest(pulled.bytes) as ImageManifest, blobs: target, name: 'filtered' });
      expect(again.bundles).toEqual(a.f.bundles);
      expect(again.channels).toEqual(a.f.channels);
      expect(again.packages).toEqual(a.f.packages);
      // the vendor's signature is for the original digest only
      await expect(target.fetchManifest(cosignTag(a.manifest.descriptor.digest, 'sig'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });
  });

  it('refuses a catalog image without the label, with one clear line', async () => {
    const plain = await buildImage([[{ name: 'configs/a.json', body: '{}' }]], { entrypoint: ['/bin/opm'], tag: 'old' });
    const repo = client.repository(reg.host, 'operators/sqlite-index');
    for (const l of plain.layers) await repo.push(l.descriptor, l.bytes);
    const cfgDesc = (parseManifest(plain.manifestBytes) as ImageManifest).config;
    await repo.push(cfgDesc, plain.store.bytes(cfgDesc.digest)!);
    await repo.push(plain.manifest, plain.manifestBytes);
    const err = await readFileBasedCatalog({ manifest: parseManifest(plain.manifestBytes) as ImageManifest, blobs: repo, name: `${reg.host}/operators/sqlite-index:old` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AirlockError);
    expect((err as AirlockError).message).toMatch(/^127\.0\.0\.1:\d+\/operators\/sqlite-index:old is not a file-based operator catalog: its image config has no operators\.operatorframework\.io\.index\.configs\.v1 label/);
  });
});

describe('cluster resources for operator catalogs', () => {
  const MIRROR = 'mirror.example.com:5000/mirror';
  const D = `sha256:${'c'.repeat(64)}` as const;
  const unchanged = (): MirroredCatalog => ({
    source: Reference.parse(`registry.redhat.io/redhat/redhat-operator-index:v4.18`),
    mirrorRepository: `${MIRROR}/redhat/redhat-operator-index`,
    digest: D as never,
    tag: 'v4.18',
    filtered: false,
  });
  const filtered = (): MirroredCatalog => ({
    source: Reference.parse(`registry.redhat.io/redhat/redhat-operator-index:v4.18`),
    mirrorRepository: `${MIRROR}/mirror/redhat-operators-small`,
    digest: `sha256:${'d'.repeat(64)}` as never,
    tag: 'v4.18-small',
    filtered: true,
  });
  const docs = (files: { name: string; content: string }[]) => Object.fromEntries(files.map((f) => [f.name, parse(f.content) as Record<string, any>]));

  it('names the catalog by digest, with oc-mirror\'s names, and validates against the CatalogSource and ClusterCatalog CRDs', async () => {
    const files = docs(catalogResources([unchanged(), filtered()]));
    expect(Object.keys(files)).toEqual(['cs-redhat-operator-index-v4-18.yaml', 'cc-redhat-operator-index-v4-18.yaml', 'cs-redhat-operator-index-v4-18-small.yaml', 'cc-redhat-operator-index-v4-18-small.yaml']);
    const cs = files['cs-redhat-operator-index-v4-18.yaml']!;
    expect(cs).toMatchObject({
      apiVersion: 'operators.coreos.com/v1alpha1',
      kind: 'CatalogSource',
      metadata: { name: 'cs-redhat-operator-index-v4-18', namespace: 'openshift-marketplace' },
      // the unchanged catalog by its source name: the IDMS redirects the pull, the vendor's policy applies
      spec: { sourceType: 'grpc', image: `registry.redhat.io/redhat/redhat-operator-index@${D}` },
    });
    expect(files['cc-redhat-operator-index-v4-18-small.yaml']!.spec).toEqual({ source: { type: 'Image', image: { ref: `${MIRROR}/mirror/redhat-operators-small@sha256:${'d'.repeat(64)}` } } });
    const csSchema = await crdSchema('operators.coreos.com_catalogsources.yaml', 'v1alpha1');
    const ccSchema = await crdSchema('olm.operatorframework.io_clustercatalogs.yaml', 'v1');
    for (const [name, doc] of Object.entries(files)) {
      const r = checkAgainst(doc.kind === 'CatalogSource' ? csSchema : ccSchema, doc);
      expect(r.errors, name).toEqual([]);
      expect(r.skipped, name).toEqual([]);
      expect(doc.metadata.name).toMatch(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
      if (doc.kind === 'ClusterCatalog') expect(r.rulesChecked, name).toBe(10);
    }
  });

  it('the ClusterCatalog CRD check is not vacuous: it refuses what the API server refuses', async () => {
    const ccSchema = await crdSchema('olm.operatorframework.io_clustercatalogs.yaml', 'v1');
    const doc = docs(catalogResources([unchanged()]))['cc-redhat-operator-index-v4-18.yaml']!;
    doc.spec.source.image.pollIntervalMinutes = 10;
    expect(checkAgainst(ccSchema, doc).errors).toEqual(['.spec.source.image: cannot specify pollIntervalMinutes while using digest-based image']);
    doc.spec.source.image = { ref: 'registry.redhat.io/redhat/redhat-operator-index@sha256:abc' };
    expect(checkAgainst(ccSchema, doc).errors).toEqual(['.spec.source.image.ref: digest is not valid. the encoded string must be at least 32 characters']);
    doc.spec.source = { type: 'Image' };
    expect(checkAgainst(ccSchema, doc).errors).toEqual(['.spec.source: image is required when source type is Image, and forbidden otherwise']);
  });

  it('names the mirror when asked, and de-duplicates names', () => {
    const a = { ...unchanged(), imageName: 'mirror' as const };
    const b = { ...unchanged(), source: Reference.parse('quay.io/other/redhat-operator-index:v4.18'), digest: `sha256:${'e'.repeat(64)}` as never };
    const files = docs(catalogResources([a, b]));
    expect(Object.keys(files)).toEqual(['cs-redhat-operator-index-v4-18.yaml', 'cc-redhat-operator-index-v4-18.yaml', 'cs-redhat-operator-index-v4-18-eeeeeeee.yaml', 'cc-redhat-operator-index-v4-18-eeeeeeee.yaml']);
    expect(files['cs-redhat-operator-index-v4-18.yaml']!.spec.image).toBe(`${MIRROR}/redhat/redhat-operator-index@${D}`);
  });

  it('writes IDMS entries for digest images (and the unchanged catalog), ITMS for tag images, valid against the OpenShift CRDs', async () => {
    const im = (ref: string, mirror: string) => ({ source: Reference.parse(ref), mirrorRepository: mirror });
    const files = docs(
      operatorMirrorSets(
        [
          im(`registry.redhat.io/rhel9/op-bundle@sha256:${'1'.repeat(64)}`, `${MIRROR}/rhel9/op-bundle`),
          im(`registry.redhat.io/rhel9/op@sha256:${'2'.repeat(64)}`, `${MIRROR}/rhel9/op`),
          im(`registry.redhat.io/rhel9/op@sha256:${'3'.repeat(64)}`, `${MIRROR}/rhel9/op`),
          im('quay.io/team/tool:1.0', `${MIRROR}/team/tool`),
        ],
        [unchanged(), filtered()],
        'airlock-abc',
      ),
    );
    expect(files['imagedigestmirrorset-operators.yaml']!.spec.imageDigestMirrors).toEqual([
      { source: 'registry.redhat.io/redhat/redhat-operator-index', mirrors: [`${MIRROR}/redhat/redhat-operator-index`] },
      { source: 'registry.redhat.io/rhel9/op', mirrors: [`${MIRROR}/rhel9/op`] },
      { source: 'registry.redhat.io/rhel9/op-bundle', mirrors: [`${MIRROR}/rhel9/op-bundle`] },
    ]);
    expect(files['imagetagmirrorset-operators.yaml']!.spec.imageTagMirrors).toEqual([{ source: 'quay.io/team/tool', mirrors: [`${MIRROR}/team/tool`] }]);
    const idms = await crdSchema('0000_10_config-operator_01_imagedigestmirrorsets.crd.yaml', 'v1');
    const itms = await crdSchema('0000_10_config-operator_01_imagetagmirrorsets.crd.yaml', 'v1');
    const r1 = checkAgainst(idms, files['imagedigestmirrorset-operators.yaml']);
    const r2 = checkAgainst(itms, files['imagetagmirrorset-operators.yaml']);
    expect([r1.errors, r2.errors]).toEqual([[], []]);
    expect([r1.skipped, r2.skipped]).toEqual([[], []]);
  });
});
