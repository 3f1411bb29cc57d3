/**
 * The main job, end to end, on one machine with no outside registry:
 *   1. start `airlock serve` as the connected-side source and seed it with signed
 *      fixture images (cosign .sig/.att/.sbom tags and OCI 1.1 referrers);
 *   2. `airlock pack` them into one archive, then `airlock inspect` it;
 *   3. start a second `airlock serve` as the disconnected registry;
 *   4. `airlock unpack` into it, and print what arrived and where.
 * Run with `npm run demo` (it builds first). `--keep` leaves the work directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from '../src/registry/client.js';
import { buildFixtures, pushStore, startRekorMock } from '../test/support/fixtures/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const bin = path.join(root, 'bin', 'airlock.mjs');
const keep = process.argv.includes('--keep');

function say(line: string): void {
  process.stdout.write(`\n\x1b[1m== ${line}\x1b[0m\n`);
}

async function serve(dir: string, name: string): Promise<{ host: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [bin, 'serve', '--root', dir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl).trim());
    });
    proc.once('exit', (code) => reject(new Error(`${name} registry exited with ${code}`)));
  });
  return { host: new URL(url).host, proc };
}

async function airlock(args: string[]): Promise<void> {
  process.stdout.write(`$ airlock ${args.join(' ')}\n`);
  const p = spawn(process.execPath, [bin, ...args], { stdio: 'inherit', env: { ...process.env, SOURCE_DATE_EPOCH: process.env.SOURCE_DATE_EPOCH ?? '1700000000' } });
  const code = await new Promise<number>((resolve) => p.once('exit', (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error(`airlock ${args[0]} exited with ${code}`);
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'airlock-demo-'));
  const procs: ChildProcess[] = [];
  const rekor = await startRekorMock();
  const client = new RegistryClient({ plainHttp: () => true });
  try {
    say('1. the connected side: airlock serve as the source registry, seeded with signed images');
    const source = await serve(path.join(work, 'source'), 'source');
    procs.push(source.proc);
    const fx = await buildFixtures({ seed: 'demo', registry: source.host, repository: 'demo/app', rekorUrl: rekor.url });
    await pushStore(fx.store, client.repository(source.host, 'demo/app'));
    process.stdout.write(`source registry ${source.host}: ${fx.images.map((i) => `demo/app:${i.tag}`).join(', ')}\n`);
    process.stdout.write(`  ${fx.referrers.length} signatures and attachments (cosign tags and OCI 1.1 referrers), signed with a demo ${fx.signingKey.kind} key\n`);
    const pub = path.join(work, 'demo-key.pub');
    await writeFile(pub, fx.signingKey.publicKeyPem);
    const config = path.join(work, 'imageset.yaml');
    await writeFile(
      config,
      [
        'apiVersion: airlock.dev/v1alpha1',
        'kind: ImageSet',
        'images:',
        ...fx.images.map((i) => `  - ${source.host}/demo/app:${i.tag}`),
        'signatures: true',
        'attachments: all',
        'registries:',
        `  "${source.host}": { plainHTTP: true }`,
        'trust:',
        '  redhat: false        # the demo has no network to fetch Red Hat\'s Rekor key; real runs carry both',
        '  keys:',
        `    - { name: demo, path: ${pub} }`,
        'policies:             # the signed images must carry a valid signature by the demo key',
        `  - scopes: ["${source.host}/demo/app:single", "${source.host}/demo/app:multi"]`,
        '    roots: [demo]',
        '    require: signature',
        '    transparencyLog: false   # the demo\'s Rekor is a local stand-in whose key is not carried',
        '',
      ].join('\n'),
    );

    say('2. pack: resolve, discover signatures and referrers, write one archive');
    const archive = path.join(work, 'airlock-demo.tar');
    await airlock(['pack', '--config', config, '--output', archive]);
    await airlock(['inspect', archive]);

    say('3. the disconnected side: verify the archive offline, with the trust roots it carries');
    await airlock(['verify', archive]);

    say('4. a second airlock serve as the offline registry');
    const dest = await serve(path.join(work, 'offline'), 'offline');
    procs.push(dest.proc);
    process.stdout.write(`offline registry ${dest.host}\n`);

    say('5. unpack: check every byte and signature again, then push with digests and referrers intact');
    await airlock(['unpack', archive, '--to', `${dest.host}/mirror`, '--plain-http', '--cluster-resources', path.join(work, 'cluster-resources')]);

    say('what arrived');
    for await (const repo of client.catalog(dest.host)) {
      const r = client.repository(dest.host, repo);
      const tags: string[] = [];
      for await (const t of r.tags()) tags.push(t);
      process.stdout.write(`${dest.host}/${repo}\n`);
      for (const t of tags.sort()) {
        const m = await r.fetchManifest(t);
        const refs = (await r.referrersFromApi(m.desc)) ?? [];
        const extra = refs.length > 0 ? `  ← ${refs.length} referrer(s): ${[...new Set(refs.map((x) => x.artifactType ?? '?'))].join(', ')}` : '';
        process.stdout.write(`  :${t.padEnd(22)} ${m.desc.digest}${extra}\n`);
      }
    }
    process.stdout.write(`\ncluster resources in ${path.join(work, 'cluster-resources')}; work directory ${work}${keep ? ' (kept)' : ' (removed; --keep keeps it)'}\n`);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await client.close();
    await rekor.stop();
    if (!keep) await rm(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
