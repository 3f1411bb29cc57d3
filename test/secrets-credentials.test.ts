import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';
import { startFaultProxy, type FaultAction, type FaultProxy } from './support/fault-proxy.js';
import { buildFixtures, pushStore, type FixtureSet } from './support/fixtures/index.js';
import { runCli, type CliResult } from './support/run-cli.js';
import { makeTestCa } from './support/tls.js';
import { writeImageSet } from './support/image-set.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const secret = (): string => `pw-${randomBytes(12).toString('hex')}`;
const basic = (user: string, pw: string): string => Buffer.from(`${user}:${pw}`).toString('base64');

/**
 * A Basic-auth gate in front of a registry: 401 with a Basic challenge unless the
 * right credentials come, and blob GETs optionally redirected to another origin,
 * which Distribution's own htpasswd mode (tested in registry-client.test.ts)
 * cannot be made to do.
 */
function basicGate(user: string, pw: string, extra: (req: IncomingMessage) => FaultAction = () => undefined) {
  return (req: IncomingMessage): FaultAction => {
    if (req.headers.authorization !== `Basic ${basic(user, pw)}`) {
      return { status: 401, headers: { 'www-authenticate': 'Basic realm="airlock-test"' }, body: '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}' };
    }
    return extra(req);
  };
}

/** A blob store on another origin: serves fixture bytes by digest and records the Authorization headers it was sent. */
async function startBlobStore(fxs: FixtureSet[]): Promise<{ url: string; hits: { path: string; authorization?: string }[]; stop(): Promise<void> }> {
  const hits: { path: string; authorization?: string }[] = [];
  const server: Server = createServer((req, res) => {
    const digest = (req.url ?? '').slice(1);
    hits.push({ path: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    const bytes = fxs.map((f) => f.store.bytes(digest as never)).find((b) => b !== undefined);
    if (!bytes) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': String(bytes.length), 'content-type': 'application/octet-stream' }).end(req.method === 'HEAD' ? undefined : bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('credentials stay secret (token and basic auth, pack and unpack)', () => {
  let dir: string;
  let tokSrc: StartedRegistry;
  let tokDst: StartedRegistry;
  let plainSrc: StartedRegistry;
  let plainDst: StartedRegistry;
  let tokProxy: FaultProxy; // in front of the token-auth source, redirecting blob GETs to the blob store
  let basicSrc: FaultProxy; // Basic gate in front of a plain source, redirecting blob GETs too
  let basicDst: FaultProxy; // Basic gate in front of a plain destination
  let store: Awaited<ReturnType<typeof startBlobStore>>;
  let fxTok: FixtureSet;
  let fxBasic: FixtureSet;
  let authfile: string;
  let cfg: string;
  let failBlob: string | undefined;
  const pw = { alice: secret(), bob: secret(), carol: secret(), dave: secret() };

  const redirectBlobs = (req: IncomingMessage): FaultAction => {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
    if (!m || req.method !== 'GET') return undefined;
    if (m[1] === failBlob) return { status: 503 };
    return { redirect: `${store.url}/${m[1]}` };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-secrets-'));
    [tokSrc, tokDst, plainSrc, plainDst] = await Promise.all([
      startDistribution({ auth: 'token', users: { alice: pw.alice } }),
      startDistribution({ auth: 'token', users: { bob: pw.bob } }),
      startDistribution(),
      startDistribution(),
    ]);
    tokProxy = await startFaultProxy(tokSrc.host, (req) => redirectBlobs(req));
    basicSrc = await startFaultProxy(plainSrc.host, basicGate('carol', pw.carol, (req) => redirectBlobs(req)));
    basicDst = await startFaultProxy(plainDst.host, basicGate('dave', pw.dave));
    fxTok = await buildFixtures({ seed: 'secrets-tok', registry: tokProxy.host, repository: 'sec/tok' });
    fxBasic = await buildFixtures({ seed: 'secrets-basic', registry: basicSrc.host, repository: 'sec/basic' });
    store = await startBlobStore([fxTok, fxBasic]);
    const seed = new RegistryClient({ plainHttp: () => true, credentials: staticCredentials({ [tokSrc.host]: { username: 'alice', password: pw.alice } }) });
    await pushStore(fxTok.store, seed.repository(tokSrc.host, 'sec/tok'), { fallbackIndexes: true });
    await pushStore(fxBasic.store, seed.repository(plainSrc.host, 'sec/basic'), { fallbackIndexes: true });
    await seed.close();
    authfile = path.join(dir, 'auth.json');
    await writeFile(
      authfile,
      JSON.stringify({
        auths: {
          [tokProxy.host]: { auth: basic('alice', pw.alice) },
          [basicSrc.host]: { auth: basic('carol', pw.carol) },
          [tokDst.host]: { auth: basic('bob', pw.bob) },
          [basicDst.host]: { auth: basic('dave', pw.dave) },
        },
      }),
    );
    cfg = await writeImageSet(path.join(dir, 'set.yaml'), { images: [`${tokProxy.host}/sec/tok:multi`, `${basicSrc.host}/sec/basic:single`], attachments: 'all' });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([tokProxy?.stop(), basicSrc?.stop(), basicDst?.stop(), store?.stop()]);
    await Promise.all([tokSrc?.stop(), tokDst?.stop(), plainSrc?.stop(), plainDst?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Every secret in play: the passwords, their Basic encodings, and every token the token servers issued (and their signatures). */
  function secrets(): string[] {
    const out: string[] = [];
    for (const [user, p] of Object.entries(pw)) out.push(p, basic(user, p));
    for (const t of [...tokSrc.tokenServer!.issued, ...tokDst.tokenServer!.issued]) out.push(t, t.split('.')[2]!);
    return out;
  }

  function expectClean(what: string, text: string | Buffer): void {
    const s = typeof text === 'string' ? text : text.toString('latin1');
    for (const x of secrets()) expect(s.includes(x), `${what} holds a secret`).toBe(false);
  }

  function expectCleanRun(what: string, r: CliResult): void {
    expectClean(`${what} stdout`, r.stdout);
    expectClean(`${what} stderr`, r.stderr);
  }

  it('pack and unpack with --verbose leave no password or token in the archive, the inventory, stdout or stderr', async () => {
    const out = path.join(dir, 'set.tar');
    const p = await runCli(['--verbose', 'pack', '--config', cfg, '--authfile', authfile, '-o', out, '--json'], { env: ENV });
    expect(p.stderr).not.toMatch(/airlock: /);
    expect(p.code).toBe(0);
    expect(p.stderr).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/v2\/sec\/tok\/manifests\/multi 200/); // --verbose did log requests
    // tokens were really used
    expect(tokSrc.tokenServer!.issued.length).toBeGreaterThan(0);
    expect(tokSrc.tokenServer!.requests.some((q) => q.user === 'alice')).toBe(true);

    const inspect = await runCli(['inspect', out, '--json']);
    expect(inspect.code).toBe(0);
    for (const dst of [tokDst.host, basicDst.host]) {
      const u = await runCli(['--verbose', 'unpack', out, '--to', `${dst}/mirror`, '--plain-http', '--authfile', authfile, '--cluster-resources', path.join(dir, `cr-${dst.replace(':', '-')}`), '--json'], { env: ENV });
      expect(u.stderr).not.toMatch(/airlock: /);
      expect(u.code).toBe(0);
      expectCleanRun(`unpack to ${dst}`, u);
      for (const f of await readdir(path.join(dir, `cr-${dst.replace(':', '-')}`), { recursive: true, withFileTypes: true })) {
        if (f.isFile()) expectClean(`cluster resource ${f.name}`, await readFile(path.join(f.parentPath, f.name)));
      }
    }
    expect(tokDst.tokenServer!.requests.some((q) => q.user === 'bob')).toBe(true);
    expect(basicDst.requests.some((q) => q.method === 'PUT' && q.authorization === `Basic ${basic('dave', pw.dave)}`)).toBe(true);

    // the check itself catches a leak (control)
    expect(() => expectClean('control', `x${tokSrc.tokenServer!.issued[0]!}x`)).toThrow();
    // checked last, so that every token issued along the way is in the list
    expectCleanRun('pack', p);
    expectClean('inventory', inspect.stdout);
    expectClean('archive', await readFile(out));
    expectClean('sidecar', await readFile(`${out}.sha256`));
  }, 60_000);

  it('never sends Authorization to the other origin a blob is redirected to', async () => {
    expect(store.hits.length).toBeGreaterThan(0);
    expect(store.hits.filter((h) => h.authorization !== undefined)).toEqual([]);
    // while the registries themselves did get credentials
    expect(basicSrc.requests.some((q) => q.authorization?.startsWith('Basic '))).toBe(true);
    expect(tokProxy.requests.some((q) => q.authorization?.startsWith('Bearer '))).toBe(true);
  });

  it('keeps secrets out of error messages, with --verbose stacks and causes too', async () => {
    // a wrong password at the destination
    const wrong = path.join(dir, 'wrong.json');
    const badPw = secret();
    await writeFile(wrong, JSON.stringify({ auths: { [basicDst.host]: { auth: basic('dave', badPw) }, [tokDst.host]: { auth: basic('bob', badPw) } } }));
    const out = path.join(dir, 'set.tar');
    for (const dst of [basicDst.host, tokDst.host]) {
      const u = await runCli(['--verbose', 'unpack', out, '--to', `${dst}/other`, '--plain-http', '--authfile', wrong, '--cluster-resources', path.join(dir, 'cr-wrong')], { env: ENV });
      expect(u.code).toBe(1);
      const lines = u.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/HTTP 401|refused the credentials/);
      expectCleanRun(`unpack with a wrong password to ${dst}`, u);
      expect(u.stderr.includes(badPw) || u.stderr.includes(basic('dave', badPw)) || u.stderr.includes(basic('bob', badPw))).toBe(false);
    }
    // a source failing mid-pack, after credentials and tokens were in use
    failBlob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(tokProxy.requests.find((q) => q.method === 'GET' && /\/blobs\/sha256:/.test(q.url))!.url)![1];
    try {
      const p = await runCli(['--verbose', 'pack', '--config', cfg, '--authfile', authfile, '-o', path.join(dir, 'fail.tar'), '--retries', '1'], { env: ENV });
      expect(p.code).toBe(1);
      expect(p.stderr).toMatch(/caused by|AirlockError/); // the verbose report really was printed
      expectCleanRun('failing pack', p);
    } finally {
      failBlob = undefined;
    }
  }, 60_000);

  it('sends nothing to a registry over plain HTTP unless --plain-http (or plainHTTP) says so', async () => {
    const noPlain = path.join(dir, 'noplain.yaml');
    await writeFile(noPlain, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'trust: { redhat: false }', 'images:', `  - ${basicSrc.host}/sec/basic:single`, ''].join('\n'));
    const before = basicSrc.requests.length;
    const r = await runCli(['pack', '--config', noPlain, '--authfile', authfile, '-o', path.join(dir, 'noplain.tar'), '--retries', '0'], { env: ENV });
    expect(r.code).toBe(1);
    // the TLS handshake failed against the plain server: not one HTTP request reached it
    expect(basicSrc.requests.length).toBe(before);
    expect(r.stderr).toMatch(/does not speak TLS|--plain-http/);
    expectCleanRun('pack without --plain-http', r);
  });

  it('does not send credentials to a plain-HTTP token realm of a TLS registry', async () => {
    const tlsDir = await mkdtemp(path.join(tmpdir(), 'airlock-secrets-tls-'));
    const ca = await makeTestCa(tlsDir);
    const reg = await startDistribution({ auth: 'token', users: { erin: secret() }, tls: { certFile: ca.certFile, keyFile: ca.keyFile } });
    try {
      const af = path.join(tlsDir, 'auth.json');
      await writeFile(af, JSON.stringify({ auths: { [reg.host]: { auth: basic('erin', reg.users.erin!) } } }));
      const c = path.join(tlsDir, 'set.yaml');
      await writeFile(c, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'trust: { redhat: false }', 'images:', `  - ${reg.host}/sec/x:latest`, ''].join('\n'));
      const r = await runCli(['pack', '--config', c, '--authfile', af, '--ca-file', ca.caFile, '-o', path.join(tlsDir, 'x.tar'), '--retries', '0'], { env: ENV });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/token realm http:\/\/127\.0\.0\.1:\d+\/token is plain http/);
      expect(reg.tokenServer!.requests).toEqual([]);
      expect(r.stderr.includes(reg.users.erin!)).toBe(false);
    } finally {
      await reg.stop();
      await rm(tlsDir, { recursive: true, force: true });
    }
  });
});
