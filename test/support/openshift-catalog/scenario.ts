import { stringify } from 'yaml';
import type { MemoryStore } from '../../../src/content/memory.js';
import type { Target } from '../../../src/content/storage.js';
import type { Digest } from '../../../src/oci/digest.js';
import { encodeJson, type Descriptor } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import { cosignTag } from '../../../src/oci/referrers.js';
import { CATALOG_CONFIGS_LABEL } from '../../../src/openshift/catalog/reader.js';
import { fixtureKeys, signBlob, simpleSigningPayload, type KeyPair } from '../cosign.js';
import { buildFixtures, pushStore } from '../fixtures/index.js';
import { buildImage, type BuiltImage, type LayerEntry } from './layer.js';

/**
 * The catalog test rig: a file-based catalog image built like opm's (opm base layer,
 * a configs layer, a cache layer), whose bundles and related images are real signed
 * images (the project's fixtures, RSA key, cosign `.sig` tags) that live in a registry.
 *
 * Catalog content (in /configs of the final filesystem):
 *
 *   alpha (default stable)  JSON stream, one file
 *     stable: 1.0.0 ← 1.1.0 ← 1.1.1; 1.2.0 replaces 1.1.0 and skips 1.1.1   → head 1.2.0
 *     fast:   1.2.0 ← 1.3.0-rc.1                                            → head 1.3.0-rc.1
 *   beta  (default stable)  YAML, ---separated, with a deprecation
 *     stable: 2.0.0 ← 2.1.0 (skipRange)                                     → head 2.1.0
 *     candidate: 2.1.0 ← 2.2.0                                              → head 2.2.0
 *     deprecations: channel candidate, bundle beta.v2.0.0, the package
 *   gamma (default preview) JSON, plus an object of another schema
 *     preview: 0.1.0
 *
 * and what a naive reader would get wrong, across layers:
 *   layer 1 has a stale alpha (one bundle, another default channel) that layer 2 replaces,
 *   a package `delta` that layer 2 deletes with `.wh.delta`, a stale gamma file that
 *   layer 2's opaque marker hides (it would make gamma a duplicate), and a README.md
 *   that would not parse, left out by `.indexignore` (`*.md`).
 *
 * Every bundle lists its bundle image (empty name, as opm renders it) and its operator
 * image; alpha 1.1.0 and 1.1.1 share one operator image.
 */
export const PACKAGES = {
  alpha: ['1.0.0', '1.1.0', '1.1.1', '1.2.0', '1.3.0-rc.1'],
  beta: ['2.0.0', '2.1.0', '2.2.0'],
  gamma: ['0.1.0'],
} as const;
export type PackageName = keyof typeof PACKAGES;

export interface OperatorImageRef {
  /** `host/repo@sha256:…` */
  readonly ref: string;
  readonly repository: string;
  readonly digest: Digest;
}

export interface CatalogScenario {
  readonly host: string;
  readonly catalogRepository: string;
  readonly catalog: BuiltImage;
  /** bundle image of `pkg.vX` */
  readonly bundleImages: ReadonlyMap<string, OperatorImageRef>;
  /** operator image of `pkg.vX` */
  readonly operatorImages: ReadonlyMap<string, OperatorImageRef>;
  readonly signingKey: KeyPair;
  /** the stores to push: operator images (with their .sig tags) and the signed catalog */
  readonly stores: readonly { repository: string; store: MemoryStore }[];
  push(target: (repository: string) => Target): Promise<void>;
}

const bundleName = (pkg: string, v: string): string => `${pkg}.v${v}`;
/** alpha 1.1.x share one operator image */
const operatorKey = (pkg: string, v: string): string => (pkg === 'alpha' && v.startsWith('1.1.') ? 'alpha/1.1' : `${pkg}/${v}`);

export interface ScenarioOptions {
  readonly host: string;
  readonly seed?: string;
  /** leave the label out of the config (a catalog that is not file-based) */
  readonly noLabel?: boolean;
  /** the catalog image's repository (default operators/test-catalog) and tag (default v1) */
  readonly repository?: string;
  readonly tag?: string;
}

export async function buildCatalogScenario(opts: ScenarioOptions): Promise<CatalogScenario> {
  const seed = opts.seed ?? 'catalog';
  const keys = await fixtureKeys();
  const stores: { repository: string; store: MemoryStore }[] = [];
  const bundleImages = new Map<string, OperatorImageRef>();
  const operatorImages = new Map<string, OperatorImageRef>();
  const madeOperators = new Map<string, OperatorImageRef>();
  const image = async (repository: string, s: string): Promise<OperatorImageRef> => {
    const fx = await buildFixtures({
      seed: `${seed}/${s}`,
      registry: opts.host,
      repository,
      keys,
      include: { single: true, multi: false, unsigned: false, cosignSignatures: true, attestation: false, sbom: false, referrers: false },
    });
    stores.push({ repository, store: fx.store });
    const digest = fx.images[0]!.digest;
    return { ref: `${opts.host}/${repository}@${digest}`, repository, digest };
  };
  for (const [pkg, versions] of Object.entries(PACKAGES)) {
    for (const v of versions) {
      const name = bundleName(pkg, v);
      bundleImages.set(name, await image(`operators/${pkg}-bundle`, `bundle/${name}`));
      const ok = operatorKey(pkg, v);
      let op = madeOperators.get(ok);
      if (op === undefined) madeOperators.set(ok, (op = await image(`operators/${pkg}-operator`, `operator/${ok}`)));
      operatorImages.set(name, op);
    }
  }

  const bundle = (pkg: string, v: string, padding = 2048) => {
    const name = bundleName(pkg, v);
    const img = bundleImages.get(name)!.ref;
    return {
      schema: 'olm.bundle',
      name,
      package: pkg,
      image: img,
      properties: [
        { type: 'olm.package', value: { packageName: pkg, version: v } },
        { type: 'olm.gvk', value: { group: `${pkg}.example.com`, kind: 'Thing', version: 'v1' } },
        // a bundle object, as opm renders the CSV into the catalog (a big base64 string in real catalogs)
        { type: 'olm.bundle.object', value: { data: Buffer.from(`{"kind":"ClusterServiceVersion","metadata":{"name":"${name}"},"pad":"${'x'.repeat(padding)}"}`).toString('base64') } },
      ],
      relatedImages: [
        { name: '', image: img },
        { name: 'operator', image: operatorImages.get(name)!.ref },
      ],
    };
  };
  const entry = (name: string, replaces?: string, skips?: string[], skipRange?: string) => ({
    name,
    ...(replaces ? { replaces } : {}),
    ...(skips ? { skips } : {}),
    ...(skipRange ? { skipRange } : {}),
  });
  const jsonStream = (objs: unknown[]): string => objs.map((o) => `${JSON.stringify(o, null, 4)}\n`).join('');

  const alpha = jsonStream([
    { schema: 'olm.package', name: 'alpha', defaultChannel: 'stable', description: 'the alpha operator' },
    { schema: 'olm.channel', package: 'alpha', name: 'fast', entries: [entry('alpha.v1.2.0'), entry('alpha.v1.3.0-rc.1', 'alpha.v1.2.0')] },
    {
      schema: 'olm.channel',
      package: 'alpha',
      name: 'stable',
      entries: [entry('alpha.v1.0.0'), entry('alpha.v1.1.0', 'alpha.v1.0.0'), entry('alpha.v1.1.1', 'alpha.v1.1.0'), entry('alpha.v1.2.0', 'alpha.v1.1.0', ['alpha.v1.1.1'])],
    },
    ...PACKAGES.alpha.map((v) => bundle('alpha', v)),
  ]);
  const beta = [
    { schema: 'olm.package', name: 'beta', defaultChannel: 'stable' },
    { schema: 'olm.channel', package: 'beta', name: 'stable', entries: [entry('beta.v2.0.0'), entry('beta.v2.1.0', 'beta.v2.0.0', undefined, '>=1.0.0 <2.1.0')] },
    { schema: 'olm.channel', package: 'beta', name: 'candidate', entries: [entry('beta.v2.1.0'), entry('beta.v2.2.0', 'beta.v2.1.0')] },
    ...PACKAGES.beta.map((v) => bundle('beta', v)),
    {
      schema: 'olm.deprecations',
      package: 'beta',
      entries: [
        { reference: { schema: 'olm.channel', name: 'candidate' }, message: 'candidate is retired' },
        { reference: { schema: 'olm.bundle', name: 'beta.v2.0.0' }, message: 'beta 2.0.0 has a CVE' },
        { reference: { schema: 'olm.package' }, message: 'beta is deprecated; use gamma' },
      ],
    },
  ]
    .map((o) => `---\n${stringify(o)}`)
    .join('');
  const gamma = jsonStream([
    { schema: 'olm.package', name: 'gamma', defaultChannel: 'preview' },
    { schema: 'olm.channel', package: 'gamma', name: 'preview', entries: [entry('gamma.v0.1.0')] },
    bundle('gamma', '0.1.0'),
    { schema: 'com.example.note', package: 'gamma', name: 'gamma-note', text: 'kept with gamma' },
  ]);

  const layers: LayerEntry[][] = [
    // opm's base image
    [
      { name: 'bin/', dir: true },
      { name: 'bin/opm', body: Buffer.alloc(4096, 0x7f), mode: 0o755 },
      { name: 'etc/', dir: true },
      { name: 'etc/passwd', body: 'root:x:0:0:root:/root:/bin/sh\n' },
    ],
    // an older catalog
    [
      { name: 'configs/', dir: true },
      { name: 'configs/.indexignore', body: '# not catalog content\n*.md\n' },
      { name: 'configs/README.md', body: 'This directory holds the catalog. It is not: a catalog file.\n' },
      { name: 'configs/alpha/', dir: true },
      { name: 'configs/alpha/catalog.json', body: jsonStream([{ schema: 'olm.package', name: 'alpha', defaultChannel: 'old' }, bundle('alpha', '1.0.0')]) },
      { name: 'configs/delta/', dir: true },
      { name: 'configs/delta/catalog.json', body: jsonStream([{ schema: 'olm.package', name: 'delta', defaultChannel: 'x' }]) },
      { name: 'configs/gamma/', dir: true },
      { name: 'configs/gamma/old.json', body: jsonStream([{ schema: 'olm.package', name: 'gamma', defaultChannel: 'old' }]) },
    ],
    // this month's catalog, over it
    [
      { name: 'configs/.wh.delta', body: '' },
      { name: 'configs/alpha/catalog.json', body: alpha },
      { name: 'configs/beta/', dir: true },
      { name: 'configs/beta/catalog.yaml', body: beta },
      { name: 'configs/gamma/', dir: true },
      { name: 'configs/gamma/.wh..wh..opq', body: '' },
      { name: 'configs/gamma/catalog.json', body: gamma },
    ],
    // opm's pre-built cache
    [
      { name: 'tmp/', dir: true },
      { name: 'tmp/cache/', dir: true },
      { name: 'tmp/cache/digest', body: 'stale-cache-of-the-unfiltered-catalog\n' },
    ],
  ];
  const catalogRepository = opts.repository ?? 'operators/test-catalog';
  const catalog = await buildImage(layers, {
    entrypoint: ['/bin/opm'],
    cmd: ['serve', '/configs', '--cache-dir=/tmp/cache'],
    tag: opts.tag ?? 'v1',
    ...(opts.noLabel ? {} : { labels: { [CATALOG_CONFIGS_LABEL]: '/configs', 'io.k8s.display-name': 'test catalog' } }),
  });
  await cosignSign(catalog.store, catalog.manifest, `${opts.host}/${catalogRepository}`, keys.rsa);
  stores.push({ repository: catalogRepository, store: catalog.store });
  return {
    host: opts.host,
    catalogRepository,
    catalog,
    bundleImages,
    operatorImages,
    signingKey: keys.rsa,
    stores,
    async push(target) {
      for (const s of stores) await pushStore(s.store, target(s.repository));
    },
  };
}

/** `cosign sign --key`: a `.sig` manifest (go-containerregistry layout) for `subject`, tagged in `store`. */
export async function cosignSign(store: MemoryStore, subject: Descriptor, dockerReference: string, key: KeyPair): Promise<Descriptor> {
  const payload = simpleSigningPayload(dockerReference, subject.digest);
  const sig = signBlob(key.privateKey, payload);
  const layer = await store.add(MediaType.CosignSimpleSigning, payload);
  const config = await store.add(
    MediaType.OciConfig,
    encodeJson({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} }),
  );
  const bytes = encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
    layers: [{ mediaType: layer.mediaType, size: layer.size, digest: layer.digest, annotations: { 'dev.cosignproject.cosign/signature': sig.toString('base64') } }],
  });
  const m = await store.add(MediaType.OciManifest, bytes);
  await store.tag(m, bytes, cosignTag(subject.digest, 'sig'));
  return m;
}
