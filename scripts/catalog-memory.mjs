#!/usr/bin/env node
// Peak memory of operator-catalog discovery on a catalog of Red Hat's size. Not a test.
//   npm run build && node scripts/catalog-memory.mjs [PACKAGES] [BUNDLES] [OBJECT_KIB]
// Defaults: 300 packages, 8000 bundles, a 50 KiB olm.bundle.object per bundle (~400 MiB
// of catalog JSON, as in redhat-operator-index). The parent writes the catalog image's
// layers (gzip tar) and config to a temp directory, streaming; then a fresh child process
// per phase reads it with dist/ (reader → filter → collect; and the filtered layer) and
// reports its own peak RSS (VmHWM from /proc/self/status), so generation never counts.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';

const LABEL = 'operators.operatorframework.io.index.configs.v1';
const MiB = 1024 * 1024;

async function vm() {
  const s = await readFile('/proc/self/status', 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
}

class Hasher extends Writable {
  constructor(file) {
    super();
    this.hash = createHash('sha256');
    this.size = 0;
    this.out = createWriteStream(file);
  }
  _write(c, _e, cb) {
    this.hash.update(c);
    this.size += c.length;
    if (this.out.write(c)) cb();
    else this.out.once('drain', cb);
  }
  _final(cb) {
    this.out.end(cb);
  }
}

async function generate(dir, packages, bundles, objectKiB) {
  const p = tar.pack();
  const tarHash = createHash('sha256');
  const sink = new Hasher(join(dir, 'layer.tar.gz'));
  const done = pipeline(
    p,
    new (class extends Writable {
      constructor() {
        super();
        this.gz = createGzip({ level: 1 });
        this.done = pipeline(this.gz, sink);
      }
      _write(c, _e, cb) {
        tarHash.update(c);
        if (this.gz.write(c)) cb();
        else this.gz.once('drain', cb);
      }
      _final(cb) {
        this.gz.end();
        this.done.then(() => cb(), cb);
      }
    })(),
  );
  const entry = (h, body) => new Promise((res, rej) => p.entry(h, body, (e) => (e ? rej(e) : res())));
  const h = { mtime: new Date(0), uid: 0, gid: 0, mode: 0o644 };
  await entry({ ...h, name: 'configs/', type: 'directory', mode: 0o755 }, Buffer.alloc(0));
  const per = Math.floor(bundles / packages);
  let made = 0;
  let jsonBytes = 0;
  for (let i = 0; i < packages; i++) {
    const pkg = `operator-${String(i).padStart(3, '0')}`;
    const n = i < packages - 1 ? per : bundles - made;
    made += n;
    const objs = [{ schema: 'olm.package', name: pkg, defaultChannel: 'stable', description: `${pkg} `.repeat(200), icon: { base64data: randomBytes(6000).toString('base64'), mediatype: 'image/png' } }];
    const names = Array.from({ length: n }, (_, k) => `${pkg}.v1.${k}.0`);
    objs.push({ schema: 'olm.channel', package: pkg, name: 'stable', entries: names.map((b, k) => ({ name: b, ...(k > 0 ? { replaces: names[k - 1], skipRange: `<1.${k}.0` } : {}) })) });
    objs.push({ schema: 'olm.channel', package: pkg, name: 'fast', entries: names.slice(-3).map((b, k, a) => ({ name: b, ...(k > 0 ? { replaces: a[k - 1] } : {}) })) });
    for (let k = 0; k < n; k++) {
      const img = (r) => `registry.redhat.io/${pkg}/${r}@sha256:${createHash('sha256').update(`${pkg}/${k}/${r}`).digest('hex')}`;
      objs.push({
        schema: 'olm.bundle',
        name: names[k],
        package: pkg,
        image: img('bundle'),
        properties: [
          { type: 'olm.package', value: { packageName: pkg, version: `1.${k}.0` } },
          { type: 'olm.gvk', value: { group: `${pkg}.example.com`, kind: 'Thing', version: 'v1' } },
          { type: 'olm.bundle.object', value: { data: randomBytes(Math.floor((objectKiB * 1024 * 3) / 4)).toString('base64') } },
          { type: 'olm.csv.metadata', value: { description: 'x'.repeat(2000), displayName: pkg } },
        ],
        relatedImages: [{ name: '', image: img('bundle') }, ...['operator', 'operand-a', 'operand-b', 'proxy', 'webhook', 'must-gather', 'console-plugin'].map((r) => ({ name: r, image: img(r) }))],
      });
    }
    const body = Buffer.from(objs.map((o) => `${JSON.stringify(o, null, 4)}\n`).join(''));
    jsonBytes += body.length;
    await entry({ ...h, name: `configs/${pkg}/catalog.json`, type: 'file', size: body.length }, body);
  }
  p.finalize();
  await done;
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sink.hash.digest('hex')}`, size: sink.size };
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/bin/opm'], Cmd: ['serve', '/configs', '--cache-dir=/tmp/cache'], Labels: { [LABEL]: '/configs' } },
      rootfs: { type: 'layers', diff_ids: [`sha256:${tarHash.digest('hex')}`] },
    }),
  );
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${createHash('sha256').update(config).digest('hex')}`, size: config.length };
  await writeFile(join(dir, 'config.json'), config);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: [layer] };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return { jsonBytes, layerBytes: sink.size };
}

async function measure(dir, phase) {
  const dist = new URL('../dist/', import.meta.url);
  const cat = await import(new URL('openshift/catalog/index.js', dist));
  const { VerifyingStream } = await import(new URL('oci/digest.js', dist));
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  const files = { [manifest.config.digest]: join(dir, 'config.json'), [manifest.layers[0].digest]: join(dir, 'layer.tar.gz') };
  const blobs = {
    async fetch(desc) {
      return createReadStream(files[desc.digest], { highWaterMark: MiB }).pipe(new VerifyingStream({ digest: desc.digest, size: desc.size }));
    },
    async exists(desc) {
      return desc.digest in files;
    },
  };
  const image = { manifest, blobs, name: 'synthetic/redhat-operator-index:v4.18' };
  const before = await vm();
  const t0 = Date.now();
  const catalog = await cat.readFileBasedCatalog(image);
  const t1 = Date.now();
  const out = { phase, baselineMiB: before.rss, packages: catalog.packages.length, bundles: catalog.bundles.length, objects: catalog.stats.objects, readSeconds: (t1 - t0) / 1000 };
  const heads = cat.filterCatalog(catalog, { full: false, packages: [] });
  const images = cat.collectOperatorImages(heads.bundles);
  // ten whole packages (full: true): every bundle object of them goes into the filtered layer
  const tenPackages = {
    full: true,
    packages: catalog.packages.slice(0, 10).map((p) => ({ name: p.name, channels: [], selectedBundles: [], source: {} })),
  };
  const ten = cat.filterCatalog(catalog, tenPackages);
  out.headsBundles = heads.bundles.length;
  out.headsImages = images.images.length;
  if (phase === 'filtered-layer') {
    const t2 = Date.now();
    const sink = createWriteStream(join(dir, 'filtered.tar.gz'));
    const layer = await cat.buildFilteredLayer({ image, catalog, filtered: ten, scratchDir: dir, out: sink });
    out.filteredLayerSeconds = (Date.now() - t2) / 1000;
    out.filteredCatalogMiB = +(layer.catalogBytes / MiB).toFixed(1);
  }
  const after = await vm();
  out.peakRssMiB = +after.hwm.toFixed(1);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const args = process.argv.slice(2);
if (args[0] === '--measure') {
  await measure(args[1], args[2]);
} else {
  const [packages = 300, bundles = 8000, objectKiB = 50] = args.map(Number);
  const dir = await mkdtemp(join(tmpdir(), 'airlock-catalog-memory-'));
  try {
    const t = Date.now();
    const g = await generate(dir, packages, bundles, objectKiB);
    console.error(`catalog: ${packages} packages, ${bundles} bundles, ${objectKiB} KiB objects: ${(g.jsonBytes / MiB).toFixed(0)} MiB of JSON, layer ${(g.layerBytes / MiB).toFixed(0)} MiB gzip (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    for (const phase of ['discovery', 'filtered-layer']) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--measure', dir, phase], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (r.status !== 0) throw new Error(`${phase} failed (${r.status})`);
      process.stdout.write(r.stdout);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
