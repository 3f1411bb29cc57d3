import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { RegistryClient } from '../src/registry/client.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';
import { buildFixtures, pushStore, startRekorMock, type FixtureSet, type RekorMock } from './support/fixtures/index.js';
import { serveFiles } from './support/key-server.js';
import { runCli } from './support/run-cli.js';
import { readTar, writeTar } from './support/tar-edit.js';

const REPO = 'team/app';
const REDHAT_KEY_SHA256 = 'sha256:64f89557ea8030ff839a45bb194594262a83502cdc69a4b04786e9d975a5c5aa';
const REDHAT_KEY_URL = 'https://security.access.redhat.com/data/63405576.txt';

async function catalog(r: StartedRegistry): Promise<string[]> {
  const res = await fetch(`${r.url}/v2/_catalog`);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

describe('verification end to end: pack → verify → unpack with signature policies (Distribution 2.8)', () => {
  let src: StartedRegistry;
  let rekor: RekorMock;
  let keySrv: { url: string; stop(): Promise<void> };
  let dir: string;
  let fx: FixtureSet;
  let client: RegistryClient;
  const archive = () => path.join(dir, 'good.tar');
  const badArchive = () => path.join(dir, 'bad.tar');

  const config = (roots: string[], images: string[]) =>
    [
      'apiVersion: airlock.dev/v1alpha1',
      'kind: ImageSet',
      'images:',
      ...images.map((t) => `  - ${src.host}/${REPO}:${t}`),
      'attachments: all',
      'registries:',
      `  "${src.host}":`,
      '    plainHTTP: true',
      'trust:',
      `  rekorKeyUrl: ${keySrv.url}/rekor.pub`,
      '  keys:',
      `    - {name: team, path: team.pub}`,
      `    - {name: other, path: other.pub}`,
      'policies:',
      `  - scopes: ["${src.host}/team"]`,
      `    roots: [${roots.join(', ')}]`,
      '',
    ].join('\n');

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-verify-e2e-'));
    [src, rekor] = await Promise.all([startDistribution(), startRekorMock()]);
    keySrv = await serveFiles({ '/rekor.pub': rekor.publicKeyPem });
    client = new RegistryClient({ plainHttp: () => true });
    fx = await buildFixtures({ seed: 'verify-e2e', registry: src.host, repository: REPO, rekorUrl: rekor.url, signWith: 'rsa' });
    await pushStore(fx.store, client.repository(src.host, REPO), { fallbackIndexes: true });
    await writeFile(path.join(dir, 'team.pub'), fx.keys.rsa.publicKeyPem);
    await writeFile(path.join(dir, 'other.pub'), fx.keys.ecdsa.publicKeyPem);
    await writeFile(path.join(dir, 'good.yaml'), config(['team'], ['multi', 'single']));
    await writeFile(path.join(dir, 'bad.yaml'), config(['other'], ['multi', 'single']));
    const [g, b] = await Promise.all([
      runCli(['pack', '--config', path.join(dir, 'good.yaml'), '-o', archive(), '--json']),
      runCli(['pack', '--config', path.join(dir, 'bad.yaml'), '-o', badArchive()]),
    ]);
    expect(g.code, g.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    await writeFile(path.join(dir, 'pack.json'), g.stdout);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([src?.stop(), rekor?.stop(), keySrv?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("carries Red Hat's release key with its sha256 and source by default, and inspect shows every root", async () => {
    const report = JSON.parse(await readFile(path.join(dir, 'pack.json'), 'utf8')) as { trustRoots: { name: string; kind: string; digest: string; source: string }[] };
    expect(report.trustRoots.find((t) => t.name === 'redhat')).toEqual({ name: 'redhat', kind: 'public-key', digest: REDHAT_KEY_SHA256, source: REDHAT_KEY_URL });
    expect(report.trustRoots.find((t) => t.name === 'redhat-rekor')).toMatchObject({ kind: 'rekor-key', source: `${keySrv.url}/rekor.pub` });
    expect(report.trustRoots.map((t) => t.name).sort()).toEqual(['other', 'redhat', 'redhat-rekor', 'team']);
    const i = await runCli(['inspect', archive()]);
    expect(i.code).toBe(0);
    expect(i.stdout).toContain(`redhat (public-key) ${REDHAT_KEY_SHA256}`);
    expect(i.stdout).toContain(`source ${REDHAT_KEY_URL}`);
    for (const t of report.trustRoots) expect(i.stdout).toContain(`${t.name} (${t.kind}) ${t.digest}`);
  });

  it('verify passes when every image and platform manifest verifies with the scope key and the log', async () => {
    const r = await runCli(['verify', archive(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as { ok: boolean; signatures: { image: string; platform?: string; status: string; root?: string; log?: string }[] };
    expect(rep.ok).toBe(true);
    expect(rep.signatures).toHaveLength(4);
    for (const s of rep.signatures) expect(s).toMatchObject({ status: 'verified', root: 'team', log: 'redhat-rekor' });
  });

  it('verify and unpack exit 3 with one line per failing image, and the destination stays empty', async () => {
    const v = await runCli(['verify', badArchive()]);
    expect(v.code).toBe(3);
    const lines = v.stderr.split('\n').filter((l) => l.startsWith('airlock: verify: '));
    // the index, its two platform manifests, and the single image: each signed by team, not by other
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l).toMatch(/invalid: (.*; )?cosign simple-signing: signed by trust root team, which is not a root for 127\.0\.0\.1:\d+\/team\/app \(roots: other\)/);
    expect(v.stderr).toMatch(/airlock: 4 image\(s\) failed signature verification/);
    const dst = await startDistribution();
    try {
      const u = await runCli(['unpack', badArchive(), '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', path.join(dir, 'cr-bad')]);
      expect(u.code).toBe(3);
      expect(u.stderr.split('\n').filter((l) => l.startsWith('airlock: verify: '))).toHaveLength(4);
      expect(await catalog(dst)).toEqual([]);
      await expect(readdir(path.join(dir, 'cr-bad'))).rejects.toThrow();
    } finally {
      await dst.stop();
    }
  });

  it('pack --verify checks before writing: the good set is written, the failing one exits 3 and writes nothing', async () => {
    const ok = path.join(dir, 'verified.tar');
    const g = await runCli(['pack', '--config', path.join(dir, 'good.yaml'), '-o', ok, '--verify']);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stderr).toMatch(/verify: verified by team \(logged in redhat-rekor\)  127\.0\.0\.1:\d+\/team\/app:single/);
    expect((await readFile(ok)).length).toBeGreaterThan(0);
    const bad = path.join(dir, 'refused.tar');
    const b = await runCli(['pack', '--config', path.join(dir, 'bad.yaml'), '-o', bad, '--verify']);
    expect(b.code).toBe(3);
    expect(b.stderr.split('\n').filter((l) => l.startsWith('airlock: verify: '))).toHaveLength(4);
    expect((await readdir(dir)).filter((f) => f.startsWith('refused.tar'))).toEqual([]);
  });

  it('a --policy file on the disconnected side replaces the archive policy', async () => {
    const pol = path.join(dir, 'policy.yaml');
    await writeFile(pol, ['policies:', `  - scopes: ["${src.host}/team/app"]`, '    roots: [team]', ''].join('\n'));
    const r = await runCli(['verify', badArchive(), '--policy', pol]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/verified by team \(logged in redhat-rekor\)/);
    await writeFile(pol, ['policies:', `  - scopes: ["${src.host}/team"]`, '    roots: [nobody]', ''].join('\n'));
    const bad = await runCli(['verify', badArchive(), '--policy', pol]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no trust root named "nobody"/);
  });

  it('refuses an archive whose trust-root blob was altered (exit 4, naming the blob)', async () => {
    const report = JSON.parse(await readFile(path.join(dir, 'pack.json'), 'utf8')) as { trustRoots: { name: string; digest: string }[] };
    const team = report.trustRoots.find((t) => t.name === 'team')!;
    const entries = await readTar(archive());
    const name = `blobs/sha256/${team.digest.slice(7)}`;
    const e = entries.find((x) => x.name === name)!;
    expect(e.body.toString()).toBe(fx.keys.rsa.publicKeyPem);
    const altered = path.join(dir, 'altered.tar');
    await writeTar(altered, entries.map((x) => (x.name === name ? { ...x, body: Buffer.from(fx.keys.ecdsa.publicKeyPem.padEnd(x.body.length, '\n').slice(0, x.body.length)) } : x)));
    for (const cmd of [['verify', altered], ['unpack', altered, '--to', '127.0.0.1:1/none', '--plain-http']]) {
      const r = await runCli(cmd);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(team.digest.slice(7, 19));
    }
  });

  it('unpack pushes a verified archive and writes cluster policies that name the sources, the key and the log', async () => {
    const dst = await startDistribution();
    const cr = path.join(dir, 'cr');
    try {
      const u = await runCli(['unpack', archive(), '--to', `${dst.host}/mirror`, '--plain-http', '--cluster-resources', cr]);
      expect(u.code, u.stderr).toBe(0);
      expect(await catalog(dst)).toContain(`mirror/${REPO}`);
    } finally {
      await dst.stop();
    }
    const files = (await readdir(cr, { recursive: true })).map(String).sort();
    expect(files).toEqual(
      expect.arrayContaining(['clusterimagepolicy-policy-1.yaml', 'imagedigestmirrorset.yaml', 'keys/redhat-rekor.pub', 'keys/team.pub', 'policy.json']),
    );
    const cip = parse(await readFile(path.join(cr, 'clusterimagepolicy-policy-1.yaml'), 'utf8')) as {
      metadata: { name: string };
      spec: { scopes: string[]; policy: { rootOfTrust: { publicKey: { keyData: string; rekorKeyData: string } }; signedIdentity: { matchPolicy: string } } };
    };
    expect(cip.metadata.name).not.toBe('openshift');
    expect(cip.spec.scopes).toEqual([`${src.host}/${REPO}`]);
    expect(Buffer.from(cip.spec.policy.rootOfTrust.publicKey.keyData, 'base64').toString()).toBe(fx.keys.rsa.publicKeyPem);
    expect(Buffer.from(cip.spec.policy.rootOfTrust.publicKey.rekorKeyData, 'base64').toString()).toBe(rekor.publicKeyPem);
    expect(cip.spec.policy.signedIdentity.matchPolicy).toBe('MatchRepoDigestOrExact');
    const pj = JSON.parse(await readFile(path.join(cr, 'policy.json'), 'utf8')) as { transports: { docker: Record<string, { type: string; keyPath: string }[]> } };
    expect(pj.transports.docker[`${src.host}/${REPO}`]![0]).toMatchObject({ type: 'sigstoreSigned', keyPath: '/etc/containers/airlock/keys/team.pub' });
    expect(await readFile(path.join(cr, 'keys/team.pub'), 'utf8')).toBe(fx.keys.rsa.publicKeyPem);
    const regd = files.find((f) => f.startsWith('registries.d/') && f.endsWith('.yaml'))!;
    const rd = parse(await readFile(path.join(cr, regd), 'utf8')) as { docker: Record<string, { 'use-sigstore-attachments': boolean }> };
    expect(Object.values(rd.docker).every((v) => v['use-sigstore-attachments'] === true)).toBe(true);
  });
});
