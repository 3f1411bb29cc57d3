import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { buildFixtures, pushStore } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';
import { runCli } from './support/run-cli.js';

const run = promisify(execFile);
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

/**
 * Every archive of scripts/hostile-archives.mjs (its own hand-made ones, plus those it derives
 * from a real packed archive with --from) through the real CLI: `verify` and `unpack --to` a
 * real Distribution registry. Each must exit 4 (ARCHIVE) with exactly one `airlock: ` line that
 * names the problem, push nothing, and write nothing in the working directory.
 */
describe('airlock verify and unpack on hostile archives', () => {
  let src: TestRegistry;
  let dst: TestRegistry;
  let dir: string;
  let corpus: string;
  let client: RegistryClient;
  let listing: [string, string][];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-hostile-cli-'));
    [src, dst] = await Promise.all([startRegistry('serve'), startRegistry('distribution')]);
    client = new RegistryClient({ plainHttp: () => true });
    const fx = await buildFixtures({ seed: 'hostile-cli', registry: src.host, repository: 'team/app' });
    await pushStore(fx.store, client.repository(src.host, 'team/app'));
    await writeFile(path.join(dir, 'team.pub'), fx.keys.rsa.publicKeyPem);
    const cfg = path.join(dir, 'set.yaml');
    await writeFile(
      cfg,
      [
        'apiVersion: airlock.dev/v1alpha1',
        'kind: ImageSet',
        'registries: { "*": { plainHTTP: true } }',
        'attachments: all',
        'trust:',
        '  redhat: false',
        '  keys:',
        '    - {name: team, path: team.pub}',
        '',
      ].join('\n'),
    );
    const good = path.join(dir, 'packed.tar');
    const r = await runCli(['pack', '--config', cfg, `${src.host}/team/app:multi`, `${src.host}/team/app:single`, '-o', good], { env: ENV, cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    corpus = path.join(dir, 'corpus');
    const script = path.join(import.meta.dirname, '..', 'scripts', 'hostile-archives.mjs');
    const { stdout } = await run(process.execPath, [script, corpus, '--from', good]);
    listing = stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t') as [string, string])
      .filter(([n]) => n !== 'good.tar');
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([src?.stop(), dst?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function catalog(): Promise<string[]> {
    const out: string[] = [];
    for await (const r of client.catalog(dst.host)) out.push(r);
    return out;
  }

  it('the corpus has at least twenty hostile archives, five of them derived from a packed archive', () => {
    expect(listing.length).toBeGreaterThanOrEqual(25);
    expect(listing.filter(([n]) => n.startsWith('packed-')).map(([n]) => n).sort()).toEqual([
      'packed-altered-trust-root.tar',
      'packed-edge-without-manifest.tar',
      'packed-referrer-cycle.tar',
      'packed-subject-outside.tar',
      'packed-wrong-sidecar.tar',
    ]);
  });

  it('the packed archive they come from verifies (control)', async () => {
    const r = await runCli(['verify', path.join(dir, 'packed.tar')], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
  });

  for (const command of ['verify', 'unpack'] as const) {
    describe(`when ${command} is given each`, () => {
      it('exits 4 with one line naming the problem, pushes nothing and writes nothing in its working directory', async () => {
        const before = (await readdir(corpus)).sort();
        const outcomes: string[] = [];
        const wanted: string[] = [];
        for (const [name, expected] of listing) {
          const cwd = await mkdtemp(path.join(dir, 'cwd-'));
          const file = path.join(corpus, name);
          // relative --cluster-resources: were unpack to get that far, it would write inside cwd
          const argv = command === 'verify' ? ['verify', file] : ['unpack', file, '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', 'cr'];
          const r = await runCli(argv, { env: ENV, cwd });
          const lines = r.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
          const left = await readdir(cwd);
          outcomes.push(
            `${name}: exit ${r.code}, ${lines.length} line(s)${lines.length === 1 && lines[0]!.includes(expected) ? ' naming the problem' : ` ${JSON.stringify(lines)}`}, stdout ${r.stdout === '' ? 'empty' : JSON.stringify(r.stdout)}, cwd ${left.length === 0 ? 'empty' : JSON.stringify(left)}`,
          );
          wanted.push(`${name}: exit 4, 1 line(s) naming the problem, stdout empty, cwd empty`);
          await rm(cwd, { recursive: true, force: true });
        }
        expect(outcomes).toEqual(wanted);
        // nothing was pushed to the destination, nothing extracted next to the archives
        expect(await catalog()).toEqual([]);
        expect((await readdir(corpus)).sort()).toEqual(before);
        expect((await readdir(dir)).sort()).toEqual(['corpus', 'packed.tar', 'packed.tar.sha256', 'set.yaml', 'team.pub']);
      }, 120_000);
    });
  }
});
