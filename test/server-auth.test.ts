/**
 * `airlock serve` exposed to a network: HTTPS, HTTP Basic users from bcrypt htpasswd files
 * (written by Debian's `htpasswd -B`), read-write, read-only and repository-scoped users,
 * mounts only from readable repositories, and authentication before any body is read.
 * The registry client and skopeo both log in; the CA is the test's own.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import { Agent, fetch as ufetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../src/errors.js';
import { digestOf } from '../src/oci/digest.js';
import { encodeJson, type Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { staticCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import { blob, OCI_MANIFEST, sha256, startTestServer, type TestServer } from './server-helpers.js';

const run = promisify(execFile);
const PW = { alice: 'alice-secret', bob: 'bob-secret', carol: 'carol-secret' };

describe('airlock serve with authentication over TLS', () => {
  let dir: string;
  let s: TestServer;
  let ca: Buffer;
  let agent: Agent;
  const basic = (user: string, pw: string): string => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
  const as = (user: keyof typeof PW) => basic(user, PW[user]);
  /** fetch over the test CA, as `user` (or anonymously) */
  const req = (p: string, init: { method?: string; body?: Buffer | string; headers?: Record<string, string> } = {}, user?: keyof typeof PW) =>
    ufetch(`${s.url}${p}`, { ...init, dispatcher: agent, headers: { ...(init.headers ?? {}), ...(user ? { authorization: as(user) } : {}) } });

  async function push(repo: string, content: string, user: keyof typeof PW): Promise<{ digest: string; size: number; bytes: Buffer }> {
    const b = blob(content);
    const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' }, user);
    expect(start.status).toBe(202);
    const loc = new URL(start.headers.get('location')!, s.url);
    loc.searchParams.set('digest', b.digest);
    expect((await req(loc.pathname + loc.search, { method: 'PUT', body: b.bytes }, user)).status).toBe(201);
    return b;
  }

  async function image(repo: string, seed: string, user: keyof typeof PW): Promise<Buffer> {
    const config = await push(repo, JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed }), user);
    const layer = await push(repo, `layer ${seed}`, user);
    return Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: MediaType.OciConfig, digest: config.digest, size: config.size },
        layers: [{ mediaType: MediaType.OciLayer, digest: layer.digest, size: layer.size }],
      }),
    );
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-auth-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    ca = await fs.readFile(cert);
    await fs.mkdir(path.join(dir, 'certs'));
    await fs.writeFile(path.join(dir, 'certs', 'ca.crt'), ca);
    const rw = path.join(dir, 'users.htpasswd');
    const ro = path.join(dir, 'readers.htpasswd');
    await run('htpasswd', ['-cbB', rw, 'alice', PW.alice]);
    // a $2y$ hash at another cost, as an operator may make it
    await run('htpasswd', ['-bB', '-C', '6', rw, 'carol', PW.carol]);
    await run('htpasswd', ['-cbB', ro, 'bob', PW.bob]);
    const access = path.join(dir, 'access');
    await fs.writeFile(access, '# who  what  where\nalice push *\nbob   pull *\ncarol push carol/*   # her own only\n');
    s = await startTestServer({ tls: { cert, key }, htpasswd: rw, htpasswdReadOnly: ro, access });
    agent = new Agent({ connect: { ca } });
  });

  afterAll(async () => {
    await agent?.close();
    await s?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  describe('when a request carries no or wrong credentials', () => {
    it('answers 401 UNAUTHORIZED with a Basic challenge, for /v2/ too', async () => {
      for (const p of ['/v2/', '/v2/team/app/manifests/v1', '/v2/_catalog']) {
        const r = await req(p);
        expect(r.status, p).toBe(401);
        expect(r.headers.get('www-authenticate')).toBe('Basic realm="airlock", charset="UTF-8"');
        expect(((await r.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNAUTHORIZED');
      }
    });

    it('answers an unknown user exactly as a wrong password', async () => {
      const answers = [];
      for (const auth of [basic('alice', 'wrong'), basic('mallory', 'wrong'), basic('mallory', PW.alice), 'Basic !!!', 'Bearer x']) {
        const r = await req('/v2/team/app/tags/list', { headers: { authorization: auth } });
        answers.push({ status: r.status, challenge: r.headers.get('www-authenticate'), body: await r.text() });
      }
      for (const a of answers) expect(a).toEqual(answers[0]);
      expect(answers[0]!.status).toBe(401);
    });

    it('authenticates before reading the body: a huge upload is answered 401 at once, and nothing is stored', async () => {
      const u = new URL(s.url);
      const socket = tls.connect({ host: u.hostname, port: Number(u.port), ca });
      let answer = '';
      socket.on('data', (c: Buffer) => (answer += c.toString()));
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      // headers only: the 100 MiB body never comes, so a server waiting for it never answers
      socket.write(`POST /v2/team/app/blobs/uploads/?digest=${sha256('x')} HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\nAuthorization: ${basic('bob', 'wrong')}\r\n\r\n`);
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      expect(answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(answer.toLowerCase()).toContain('connection: close');
      expect(await fs.readdir(path.join(s.root, 'uploads'))).toEqual([]);
    });
  });

  describe('when users of each kind work', () => {
    let manifest: Buffer;
    beforeAll(async () => {
      manifest = await image('team/app', 'team', 'alice');
      expect((await req('/v2/team/app/manifests/v1', { method: 'PUT', body: manifest, headers: { 'content-type': OCI_MANIFEST } }, 'alice')).status).toBe(201);
    });

    it('lets the read-write user push and the read-only user pull', async () => {
      const r = await req('/v2/team/app/manifests/v1', {}, 'bob');
      expect(r.status).toBe(200);
      expect(Buffer.from(await r.arrayBuffer())).toEqual(manifest);
    });

    it('refuses every write of the read-only user with 403 DENIED, opening no session', async () => {
      for (const [method, p] of [
        ['POST', '/v2/team/app/blobs/uploads/'],
        ['PUT', '/v2/team/app/manifests/v2'],
        ['DELETE', `/v2/team/app/manifests/${sha256(manifest)}`],
        ['DELETE', '/v2/team/app/manifests/v1'],
      ] as const) {
        const r = await req(p, { method, ...(method === 'PUT' ? { body: manifest, headers: { 'content-type': OCI_MANIFEST } } : {}) }, 'bob');
        expect(r.status, `${method} ${p}`).toBe(403);
        expect(((await r.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('DENIED');
      }
      expect(await fs.readdir(path.join(s.root, 'uploads'))).toEqual([]);
      expect((await req('/v2/team/app/manifests/v1', {}, 'alice')).status).toBe(200);
    });

    it('keeps a scoped user to her repositories: push and pull there, 403 elsewhere, and a catalog of hers only', async () => {
      const m = await image('carol/tools', 'carol', 'carol');
      expect((await req('/v2/carol/tools/manifests/latest', { method: 'PUT', body: m, headers: { 'content-type': OCI_MANIFEST } }, 'carol')).status).toBe(201);
      expect((await req('/v2/team/app/manifests/v1', {}, 'carol')).status).toBe(403);
      expect((await req('/v2/team/app/blobs/uploads/', { method: 'POST' }, 'carol')).status).toBe(403);
      const cat = (await (await req('/v2/_catalog', {}, 'carol')).json()) as { repositories: string[] };
      expect(cat.repositories).toEqual(['carol/tools']);
      const all = (await (await req('/v2/_catalog', {}, 'bob')).json()) as { repositories: string[] };
      expect(all.repositories).toEqual(['carol/tools', 'team/app']);
    });

    it('mounts a blob only from a repository the user may pull from', async () => {
      const secret = await push('team/app', 'only for the team', 'alice');
      for (const q of [`mount=${secret.digest}&from=team/app`, `mount=${secret.digest}`]) {
        const r = await req(`/v2/carol/tools/blobs/uploads/?${q}`, { method: 'POST' }, 'carol');
        // not mounted: an ordinary session, as for a blob the source lacks
        expect(r.status, q).toBe(202);
        await req(`${r.headers.get('location')!}`, { method: 'DELETE' }, 'carol');
        expect((await req(`/v2/carol/tools/blobs/${secret.digest}`, { method: 'HEAD' }, 'carol')).status).toBe(404);
      }
      const ok = await req(`/v2/team/copy/blobs/uploads/?mount=${secret.digest}&from=team/app`, { method: 'POST' }, 'alice');
      expect(ok.status).toBe(201);
      const g = await req(`/v2/team/copy/blobs/${secret.digest}`, {}, 'alice');
      expect(Buffer.from(await g.arrayBuffer())).toEqual(secret.bytes);
    });
  });

  describe('when the registry client logs in', () => {
    it('pushes as the read-write user and pulls as the read-only one, verifying the server with --ca-file', async () => {
      const caFile = path.join(dir, 'certs', 'ca.crt');
      const writer = new RegistryClient({ caFile, credentials: staticCredentials({ [s.host]: { username: 'alice', password: PW.alice } }), retries: 0 });
      const reader = new RegistryClient({ caFile, credentials: staticCredentials({ [s.host]: { username: 'bob', password: PW.bob } }), retries: 0 });
      try {
        const layer = Buffer.from('pushed by the registry client');
        const layerDesc: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(layer), size: layer.length };
        const config = encodeJson({ architecture: 'arm64', os: 'linux' });
        const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
        const bytes = encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [layerDesc] });
        const desc: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(bytes), size: bytes.length };
        const w = writer.repository(s.host, 'client/app');
        await w.push(configDesc, config);
        await w.push(layerDesc, layer);
        await w.pushManifest(desc, bytes, { tag: 'v1' });
        const got = await reader.repository(s.host, 'client/app').fetchManifest('v1');
        expect(got.bytes.equals(bytes)).toBe(true);
        await expect(reader.repository(s.host, 'client/app').pushManifest(desc, bytes, { tag: 'v2' })).rejects.toSatisfy((e: unknown) => isAirlockError(e, 'UNAUTHORIZED'));
        const anonymous = new RegistryClient({ caFile, credentials: staticCredentials({}), retries: 0 });
        try {
          await expect(anonymous.repository(s.host, 'client/app').fetchManifest('v1')).rejects.toSatisfy((e: unknown) => isAirlockError(e, 'UNAUTHORIZED'));
        } finally {
          await anonymous.close();
        }
      } finally {
        await writer.close();
        await reader.close();
      }
    });
  });

  describe('when skopeo logs in', () => {
    it('copies out with --src-creds and back in with an authfile, verifying TLS with the CA, and is refused as the read-only user', async () => {
      const certDir = path.join(dir, 'certs');
      const layout = path.join(dir, 'layout');
      const opts = { env: { ...process.env, TMPDIR: dir }, maxBuffer: 16 * 1024 * 1024 };
      await run('skopeo', ['copy', '--preserve-digests', '--src-cert-dir', certDir, '--src-creds', `bob:${PW.bob}`, `docker://${s.host}/team/app:v1`, `oci:${layout}:v1`], opts);
      const refused = await run('skopeo', ['copy', '--retry-times', '0', '--dest-cert-dir', certDir, '--dest-creds', `bob:${PW.bob}`, `oci:${layout}:v1`, `docker://${s.host}/skopeo/app:v1`], opts).then(
        () => undefined,
        (e: { stderr: string }) => e.stderr,
      );
      expect(refused).toMatch(/denied|403|unauthorized/i);
      const authfile = path.join(dir, 'auth.json');
      await fs.writeFile(authfile, JSON.stringify({ auths: { [s.host]: { auth: Buffer.from(`alice:${PW.alice}`).toString('base64') } } }));
      await run('skopeo', ['copy', '--preserve-digests', '--dest-cert-dir', certDir, '--authfile', authfile, `oci:${layout}:v1`, `docker://${s.host}/skopeo/app:v1`], opts);
      const a = Buffer.from(await (await req('/v2/team/app/manifests/v1', {}, 'bob')).arrayBuffer());
      const b = Buffer.from(await (await req('/v2/skopeo/app/manifests/v1', {}, 'bob')).arrayBuffer());
      expect(b).toEqual(a);
      const { stdout } = await run('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', `bob:${PW.bob}`, `docker://${s.host}/skopeo/app:v1`], opts);
      expect(Buffer.from(stdout)).toEqual(a);
    });
  });
});

describe('airlock serve access files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-authcfg-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function startFails(files: Record<string, string>, opts: { htpasswd?: string; htpasswdReadOnly?: string; access?: string }): Promise<string> {
    for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
    const abs = Object.fromEntries(Object.entries(opts).map(([k, v]) => [k, path.join(dir, v)]));
    try {
      const s = await startTestServer(abs);
      await s.dispose();
      return 'started';
    } catch (e) {
      expect(isAirlockError(e, 'CONFIG')).toBe(true);
      return (e as Error).message;
    }
  }

  it('refuses hashes that are not bcrypt, naming the file and line', async () => {
    const md5 = (await run('htpasswd', ['-nbm', 'eve', 'pw'])).stdout.trim();
    const msg = await startFails({ 'md5.htpasswd': `# comment\n\n${md5}\n` }, { htpasswd: 'md5.htpasswd' });
    expect(msg).toBe(`${path.join(dir, 'md5.htpasswd')}:3: user "eve" has a hash that is not bcrypt; only bcrypt is accepted (create it with: htpasswd -B ${path.join(dir, 'md5.htpasswd')} eve)`);
  });

  it('refuses a user listed as read-write and read-only, a rule for an unknown user, and push for a read-only user', async () => {
    const line = (await run('htpasswd', ['-nbB', 'dan', 'pw'])).stdout.trim();
    expect(await startFails({ 'a.htpasswd': `${line}\n`, 'b.htpasswd': `${line}\n` }, { htpasswd: 'a.htpasswd', htpasswdReadOnly: 'b.htpasswd' })).toMatch(/b\.htpasswd:1: user "dan" is listed twice/);
    expect(await startFails({ 'rules': 'zed pull *\n' }, { htpasswd: 'a.htpasswd', access: 'rules' })).toMatch(/rules:1: "zed" is not a user of the htpasswd files/);
    expect(await startFails({ 'rules2': 'dan push *\n' }, { htpasswdReadOnly: 'b.htpasswd', access: 'rules2' })).toMatch(/rules2:1: grants push to .*read-only/);
    expect(await startFails({ 'rules3': 'dan pull Bad_Name\n' }, { htpasswd: 'a.htpasswd', access: 'rules3' })).toMatch(/rules3:1: "Bad_Name" is not a repository name/);
  });
});

describe('airlock serve on a network address', () => {
  it('refuses, before opening anything, to listen beyond loopback without authentication', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-public-'));
    try {
      const { startServer } = await import('../src/server/index.js');
      await expect(startServer({ root: path.join(root, 'never'), listen: '0.0.0.0:0' })).rejects.toSatisfy(
        (e: unknown) => isAirlockError(e, 'USAGE') && /^refusing to listen on 0\.0\.0\.0:0 without authentication/.test((e as Error).message),
      );
      await expect(fs.access(path.join(root, 'never'))).rejects.toThrow();
      // loopback names are loopback
      const s = await startServer({ root: path.join(root, 'lo'), listen: 'localhost:0' });
      await s.close();
      expect(s.warnings).toEqual([]);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });

  it('starts with --insecure-public, and says so on every start; with auth but no TLS it warns of clear-text passwords', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-public-'));
    const { startServer } = await import('../src/server/index.js');
    try {
      for (let i = 0; i < 2; i++) {
        const s = await startServer({ root, listen: '0.0.0.0:0', insecurePublic: true });
        try {
          expect(s.warnings).toEqual([expect.stringMatching(/^warning: 0\.0\.0\.0:0 is reachable from the network with no authentication \(--insecure-public\)/)]);
          const port = s.host.split(':').pop();
          expect((await fetch(`http://127.0.0.1:${port}/v2/`)).status).toBe(200);
        } finally {
          await s.close();
        }
      }
      const users = path.join(root, 'users');
      await run('htpasswd', ['-cbB', users, 'alice', 'pw']);
      const s = await startServer({ root, listen: '0.0.0.0:0', htpasswd: users });
      await s.close();
      expect(s.warnings).toEqual([expect.stringMatching(/plain HTTP: basic-auth passwords cross it in clear text/)]);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
