/**
 * `npm run bench`: airlock against skopeo on loopback, in one run, alternating the tools (issue 8).
 *
 *   (a) one 1 GiB image of eight 128 MiB incompressible layers in a fresh Distribution registry:
 *       airlock pack  vs  skopeo copy --all docker://… oci-archive:…
 *       airlock unpack vs skopeo copy --all oci-archive:… docker://…  (each into a fresh registry)
 *       the loopback ceiling: curl of every blob into files (one after another, and all at once)
 *   (b) 200 small images, each with a cosign .sig, an attestation (.att) and an SBOM (.sbom):
 *       airlock pack --attachments all at the default concurrency vs --concurrency 1
 *   peak resident memory (/usr/bin/time's maximum RSS) of every run.
 *
 * Flags: --rounds N (default 3; medians are reported), --small N (default 200), --big (also a 4 GiB
 * image of 32×128 MiB for the memory point; slow), --profile (node --cpu-prof for airlock runs, into
 * bench-results/), --keep (leave the work directory), --concurrency N (airlock's, default: its own).
 * Prints a table and writes bench-results/bench-<time>.json. Not part of the tests; CI must not run it.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem, release } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RegistryClient } from '../src/registry/client.js';
import type { Repository } from '../src/registry/repository.js';
import type { Descriptor } from '../src/oci/manifest.js';
import type { Digest } from '../src/oci/digest.js';
import { startDistribution, type StartedRegistry } from '../test/support/distribution.js';

const exec = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const bin = path.join(root, 'bin', 'airlock.mjs');
const MiB = 1024 * 1024;

interface Args {
  rounds: number;
  small: number;
  big: boolean;
  profile: boolean;
  keep: boolean;
  concurrency?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { rounds: 3, small: 200, big: false, profile: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${f} needs a value`);
      return v;
    };
    if (f === '--rounds') a.rounds = Number(val());
    else if (f === '--small') a.small = Number(val());
    else if (f === '--big') a.big = true;
    else if (f === '--profile') a.profile = true;
    else if (f === '--keep') a.keep = true;
    else if (f === '--concurrency') a.concurrency = val();
    else throw new Error(`unknown flag ${f}`);
  }
  return a;
}

interface Run {
  what: string;
  tool: 'airlock' | 'skopeo' | 'curl';
  round: number;
  seconds: number;
  bytes: number;
  mbps: number;
  maxRssMiB: number;
}

/** Run a command under /usr/bin/time to learn its peak RSS; wall time is measured here. */
async function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ seconds: number; maxRssMiB: number; stdout: string }> {
  const rssFile = path.join(tmpdir(), `airlock-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const started = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rss = (await readFile(rssFile, 'utf8').catch(() => '0')).trim().split('\n').pop()!;
  await rm(rssFile, { force: true });
  if (code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${Buffer.concat(err).toString().slice(-2000)}`);
  }
  return { seconds, maxRssMiB: Number(rss) / 1024, stdout: Buffer.concat(out).toString() };
}

// ---- seeding ---------------------------------------------------------------

function sha256(b: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
}

/** Write `size` bytes of incompressible data to a file, returning its digest (streamed, 8 MiB at a time). */
async function randomFile(file: string, size: number): Promise<Digest> {
  const h = createHash('sha256');
  const ws = createWriteStream(file);
  let left = size;
  while (left > 0) {
    const n = Math.min(8 * MiB, left);
    const buf = randomFillSync(Buffer.allocUnsafe(n));
    h.update(buf);
    if (!ws.write(buf)) await new Promise<void>((r) => ws.once('drain', () => r()));
    left -= n;
  }
  await new Promise<void>((resolve, reject) => ws.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return `sha256:${h.digest('hex')}` as Digest;
}

async function pushJson(repo: Repository, mediaType: string, doc: unknown, tag?: string): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const desc: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
  if (mediaType.includes('manifest') || mediaType.includes('index')) await repo.pushManifest(desc, bytes, tag !== undefined ? { tag } : {});
  else await repo.push(desc, bytes);
  return desc;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** (a): one image of `layers` incompressible layers of `layerSize` bytes. Returns the blob descriptors. */
async function seedBig(client: RegistryClient, host: string, repoName: string, layers: number, layerSize: number, work: string): Promise<Descriptor[]> {
  const repo = client.repository(host, repoName);
  const descs: Descriptor[] = [];
  for (let i = 0; i < layers; i++) {
    const file = path.join(work, `layer-${i}`);
    const digest = await randomFile(file, layerSize);
    const desc: Descriptor = { mediaType: LAYER, digest, size: layerSize };
    await repo.push(desc, createReadStream(file, { highWaterMark: MiB }));
    await rm(file);
    descs.push(desc);
  }
  const config = await pushJson(repo, OCI_CONFIG, {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) },
    config: {},
  });
  await pushJson(repo, OCI_MANIFEST, { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: descs }, 'v1');
  return [config, ...descs];
}

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

/** (b): `count` small images, one per repository, each with cosign .sig, .att and .sbom tags. */
async function seedSmall(client: RegistryClient, host: string, count: number): Promise<string[]> {
  const refs: string[] = [];
  const ids = Array.from({ length: count }, (_, i) => i);
  await pool(ids, 16, async (i) => {
    const name = `bench/small-${String(i).padStart(3, '0')}`;
    const repo = client.repository(host, name);
    const layerBytes = randomFillSync(Buffer.alloc(16 * 1024));
    const layer: Descriptor = { mediaType: LAYER, digest: sha256(layerBytes), size: layerBytes.length };
    await repo.push(layer, layerBytes);
    const config = await pushJson(repo, OCI_CONFIG, { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: { Labels: { i: String(i) } } });
    const image = await pushJson(repo, OCI_MANIFEST, { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] }, 'v1');
    const ref = `${host}/${name}`;
    const tagBase = image.digest.replace(':', '-');
    const attach = async (suffix: string, mediaType: string, payload: unknown, annotations: Record<string, string>): Promise<void> => {
      const bytes = Buffer.from(JSON.stringify(payload));
      const l: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length, annotations };
      await repo.push(l, bytes);
      const cfg = await pushJson(repo, OCI_CONFIG, { architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [l.digest] }, config: {} });
      await pushJson(repo, OCI_MANIFEST, { schemaVersion: 2, mediaType: OCI_MANIFEST, config: cfg, layers: [l] }, `${tagBase}.${suffix}`);
    };
    const simple = {
      critical: { identity: { 'docker-reference': ref }, image: { 'docker-manifest-digest': image.digest }, type: 'cosign container image signature' },
      optional: null,
    };
    // The signatures are not valid (pack does not verify); what matters is the shape and the requests.
    await attach('sig', 'application/vnd.dev.cosign.simplesigning.v1+json', simple, { 'dev.cosignproject.cosign/signature': Buffer.from(`bench-${i}`).toString('base64') });
    const statement = { _type: 'https://in-toto.io/Statement/v1', subject: [{ name: ref, digest: { sha256: image.digest.slice(7) } }], predicateType: 'https://slsa.dev/provenance/v1', predicate: {} };
    await attach(
      'att',
      'application/vnd.dsse.envelope.v1+json',
      { payloadType: 'application/vnd.in-toto+json', payload: Buffer.from(JSON.stringify(statement)).toString('base64'), signatures: [{ keyid: '', sig: 'YmVuY2g=' }] },
      { predicateType: 'https://slsa.dev/provenance/v1' },
    );
    await attach('sbom', 'text/spdx+json', { spdxVersion: 'SPDX-2.3', name: ref, packages: [] }, {});
    refs[i] = `${ref}:v1`;
  });
  return refs;
}

// ---- the runs ---------------------------------------------------------------

async function clearSkopeoCache(): Promise<void> {
  // skopeo remembers where blobs live and would try mounts from earlier registries (FIELD-NOTES).
  await rm('/var/lib/containers/cache/blob-info-cache-v1.boltdb', { force: true });
  await rm(path.join(process.env.HOME ?? '/root', '.local/share/containers/cache/blob-info-cache-v1.boltdb'), { force: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = await mkdtemp(path.join(tmpdir(), 'airlock-bench-'));
  const results = path.join(root, 'bench-results');
  await mkdir(results, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
  const client = new RegistryClient({ plainHttp: () => true });
  const registries: StartedRegistry[] = [];
  const runs: Run[] = [];
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const conc = args.concurrency !== undefined ? ['--concurrency', args.concurrency] : [];
  const nodeArgs = (tag: string): string[] => (args.profile ? ['--cpu-prof', '--cpu-prof-dir', path.join(results, `prof-${stamp}`), '--cpu-prof-name', `${tag}.cpuprofile`] : []);
  const record = (r: Omit<Run, 'mbps'>): void => {
    const run = { ...r, mbps: r.bytes / MiB / r.seconds };
    runs.push(run);
    const rate = r.bytes > 0 ? `  ${run.mbps.toFixed(0)} MiB/s` : '';
    log(`  ${run.what.padEnd(34)} ${run.tool.padEnd(8)} round ${run.round}: ${run.seconds.toFixed(2)} s${rate}  peak RSS ${run.maxRssMiB.toFixed(0)} MiB`);
  };
  try {
    const source = await startDistribution();
    registries.push(source);
    log(`seeding (a) 8×128 MiB into ${source.host} …`);
    const bigBlobs = await seedBig(client, source.host, 'bench/big', 8, 128 * MiB, work);
    const bigBytes = bigBlobs.reduce((n, d) => n + d.size, 0);
    const bigRef = `${source.host}/bench/big:v1`;
    log(`seeding (b) ${args.small} small images with .sig/.att/.sbom …`);
    const smallRefs = await seedSmall(client, source.host, args.small);

    const fresh = async (): Promise<StartedRegistry> => {
      const r = await startDistribution();
      registries.push(r);
      return r;
    };
    const stopRegistry = async (r: StartedRegistry): Promise<void> => {
      await r.stop();
      registries.splice(registries.indexOf(r), 1);
    };
    const airlockPack = async (round: number, what: string, refs: string[], out: string, extra: string[], bytes: number): Promise<void> => {
      await rm(out, { force: true });
      await rm(`${out}.sha256`, { force: true });
      const t = await timed(process.execPath, [...nodeArgs(`pack-${what.replace(/\W+/g, '-')}-${round}`), bin, 'pack', ...refs, '-o', out, '--plain-http', '--no-redhat-trust', '--quiet', ...extra], { env });
      record({ what, tool: 'airlock', round, seconds: t.seconds, bytes, maxRssMiB: t.maxRssMiB });
    };
    const skopeoPack = async (round: number, out: string): Promise<void> => {
      await rm(out, { force: true });
      await clearSkopeoCache();
      const t = await timed('skopeo', ['--tmpdir', work, 'copy', '-q', '--all', '--src-tls-verify=false', `docker://${bigRef}`, `oci-archive:${out}`]);
      record({ what: 'pack (a) 1 GiB', tool: 'skopeo', round, seconds: t.seconds, bytes: bigBytes, maxRssMiB: t.maxRssMiB });
    };
    const airlockUnpack = async (round: number, what: string, archive: string, bytes: number): Promise<void> => {
      const dest = await fresh();
      try {
        const t = await timed(
          process.execPath,
          [...nodeArgs(`unpack-${round}`), bin, 'unpack', archive, '--to', `${dest.host}/mirror`, '--plain-http', '--quiet', '--cluster-resources', path.join(work, `cr-${round}`), ...conc],
          { env },
        );
        record({ what, tool: 'airlock', round, seconds: t.seconds, bytes, maxRssMiB: t.maxRssMiB });
      } finally {
        await stopRegistry(dest);
      }
    };
    const skopeoUnpack = async (round: number, archive: string): Promise<void> => {
      const dest = await fresh();
      try {
        await clearSkopeoCache();
        const t = await timed('skopeo', ['--tmpdir', work, 'copy', '-q', '--all', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${dest.host}/mirror/bench/big:v1`]);
        record({ what: 'unpack (a) 1 GiB', tool: 'skopeo', round, seconds: t.seconds, bytes: bigBytes, maxRssMiB: t.maxRssMiB });
      } finally {
        await stopRegistry(dest);
      }
    };
    const curl = async (round: number, parallel: boolean): Promise<void> => {
      const dir = path.join(work, 'curl');
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir);
      const a = parallel ? ['-Z', '--parallel-max', '8'] : [];
      for (const d of bigBlobs) a.push('-o', path.join(dir, d.digest.slice(7)), `http://${source.host}/v2/bench/big/blobs/${d.digest}`);
      const t = await timed('curl', ['-sSf', ...a]);
      record({ what: parallel ? 'curl ceiling (a), 8 at once' : 'curl ceiling (a), one at a time', tool: 'curl', round, seconds: t.seconds, bytes: bigBytes, maxRssMiB: t.maxRssMiB });
      await rm(dir, { recursive: true, force: true });
    };

    const aOut = path.join(work, 'a-airlock.tar');
    const sOut = path.join(work, 'a-skopeo.tar');
    for (let round = 1; round <= args.rounds; round++) {
      log(`round ${round}/${args.rounds}`);
      // Alternate which tool goes first, so neither always meets a warmer cache.
      const order = round % 2 === 1 ? ['airlock', 'skopeo'] : ['skopeo', 'airlock'];
      for (const tool of order) {
        if (tool === 'airlock') await airlockPack(round, 'pack (a) 1 GiB', [bigRef], aOut, conc, bigBytes);
        else await skopeoPack(round, sOut);
      }
      await curl(round, false);
      await curl(round, true);
      for (const tool of order) {
        if (tool === 'airlock') await airlockUnpack(round, 'unpack (a) 1 GiB', aOut, bigBytes);
        else await skopeoUnpack(round, sOut);
      }
      const small = path.join(work, 'b.tar');
      const smallOrder = round % 2 === 1 ? ['default', 'one'] : ['one', 'default'];
      for (const which of smallOrder) {
        if (which === 'default') await airlockPack(round, `pack (b) ${args.small} images, default`, smallRefs, small, ['--attachments', 'all', ...conc], 0);
        else await airlockPack(round, `pack (b) ${args.small} images, conc. 1`, smallRefs, small, ['--attachments', 'all', '--concurrency', '1'], 0);
      }
    }
    await rm(sOut, { force: true });

    if (args.big) {
      log('seeding the 4 GiB variant (32×128 MiB) …');
      const huge = await seedBig(client, source.host, 'bench/huge', 32, 128 * MiB, work);
      const hugeBytes = huge.reduce((n, d) => n + d.size, 0);
      const hOut = path.join(work, 'huge.tar');
      await airlockPack(1, 'pack 4 GiB', [`${source.host}/bench/huge:v1`], hOut, conc, hugeBytes);
      await airlockUnpack(1, 'unpack 4 GiB', hOut, hugeBytes);
      await rm(hOut, { force: true });
    }

    // ---- summary ----
    const med = (what: string, tool: Run['tool'], key: 'seconds' | 'mbps' | 'maxRssMiB'): number => median(runs.filter((r) => r.what === what && r.tool === tool).map((r) => r[key]));
    const maxOf = (what: string, tool: Run['tool']): number => Math.max(...runs.filter((r) => r.what === what && r.tool === tool).map((r) => r.maxRssMiB));
    const rows: [string, string, string][] = [];
    const add = (what: string, value: string, target: string): void => void rows.push([what, value, target]);
    const packA = med('pack (a) 1 GiB', 'airlock', 'mbps');
    const packS = med('pack (a) 1 GiB', 'skopeo', 'mbps');
    const unA = med('unpack (a) 1 GiB', 'airlock', 'mbps');
    const unS = med('unpack (a) 1 GiB', 'skopeo', 'mbps');
    const ceil1 = med('curl ceiling (a), one at a time', 'curl', 'mbps');
    const ceil8 = med('curl ceiling (a), 8 at once', 'curl', 'mbps');
    const bDef = med(`pack (b) ${args.small} images, default`, 'airlock', 'seconds');
    const bOne = med(`pack (b) ${args.small} images, conc. 1`, 'airlock', 'seconds');
    add('pack (a): airlock MiB/s', packA.toFixed(0), '');
    add('pack (a): skopeo MiB/s', packS.toFixed(0), '');
    add('pack (a): airlock / skopeo', `${(packA / packS).toFixed(2)}×`, '≥ 2×');
    add('curl ceiling, one at a time MiB/s', ceil1.toFixed(0), '');
    add('curl ceiling, 8 at once MiB/s', ceil8.toFixed(0), '');
    add('pack (a): airlock / curl (one at a time)', `${(packA / ceil1).toFixed(2)}×`, '≥ 0.8×');
    add('pack (a): airlock / curl (8 at once)', `${(packA / ceil8).toFixed(2)}×`, '');
    add('unpack (a): airlock MiB/s', unA.toFixed(0), '');
    add('unpack (a): skopeo MiB/s', unS.toFixed(0), '');
    add('unpack (a): airlock / skopeo', `${(unA / unS).toFixed(2)}×`, '≥ 1.5×');
    add('pack (b): default concurrency s', bDef.toFixed(2), '');
    add('pack (b): concurrency 1 s', bOne.toFixed(2), '');
    add('pack (b): default / concurrency 1', `${(bDef / bOne).toFixed(2)}×`, '≤ 0.25×');
    add('peak RSS pack (a) airlock MiB', maxOf('pack (a) 1 GiB', 'airlock').toFixed(0), '≤ 190 (200 MB)');
    add('peak RSS unpack (a) airlock MiB', maxOf('unpack (a) 1 GiB', 'airlock').toFixed(0), '≤ 190 (200 MB)');
    add('peak RSS pack (a) skopeo MiB', maxOf('pack (a) 1 GiB', 'skopeo').toFixed(0), '');
    add('peak RSS unpack (a) skopeo MiB', maxOf('unpack (a) 1 GiB', 'skopeo').toFixed(0), '');
    add('peak RSS pack (b) airlock MiB', maxOf(`pack (b) ${args.small} images, default`, 'airlock').toFixed(0), '');
    if (args.big) {
      add('pack 4 GiB: airlock MiB/s, peak RSS MiB', `${med('pack 4 GiB', 'airlock', 'mbps').toFixed(0)}, ${maxOf('pack 4 GiB', 'airlock').toFixed(0)}`, 'RSS as for 1 GiB');
      add('unpack 4 GiB: airlock MiB/s, peak RSS MiB', `${med('unpack 4 GiB', 'airlock', 'mbps').toFixed(0)}, ${maxOf('unpack 4 GiB', 'airlock').toFixed(0)}`, 'RSS as for 1 GiB');
    }
    const w = Math.max(...rows.map((r) => r[0].length));
    process.stdout.write(`\nmedians of ${args.rounds} round(s), alternating tools\n`);
    for (const [a, b, c] of rows) process.stdout.write(`${a.padEnd(w)}  ${b.padStart(10)}  ${c}\n`);
    const machine = {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 1024 ** 3),
      kernel: release(),
      node: process.version,
      skopeo: (await exec('skopeo', ['--version'])).stdout.trim(),
      registry: (await exec('/usr/bin/docker-registry', ['--version'])).stdout.trim(),
      archiveSize: (await stat(aOut).catch(() => undefined))?.size,
    };
    const file = path.join(results, `bench-${stamp}.json`);
    await writeFile(file, `${JSON.stringify({ machine, args, summary: Object.fromEntries(rows.map((r) => [r[0], r[1]])), runs }, null, 2)}\n`);
    process.stdout.write(`\nwrote ${path.relative(process.cwd(), file)}\n`);
  } finally {
    await client.close();
    for (const r of [...registries]) await r.stop();
    if (args.keep) log(`work directory kept: ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
