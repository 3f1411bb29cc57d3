import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll } from '../src/content/read.js';
import { isAirlockError } from '../src/errors.js';
import { digestOf, type Digest } from '../src/oci/digest.js';
import { encodeJson, type Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { fallbackTag } from '../src/oci/referrers.js';
import { loadCredentials, noCredentials, staticCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import type { Repository } from '../src/registry/repository.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';

const run = promisify(execFile);

function blob(bytes: Buffer, mediaType: string = MediaType.OciLayerGzip): { desc: Descriptor; bytes: Buffer } {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

function manifestOf(v: unknown, mediaType: string): { desc: Descriptor; bytes: Buffer } {
  const bytes = encodeJson(v);
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

/** An image: config + layers + manifest, with an extra space in the manifest so re-serialising would change its digest. */
function makeImage(label: string, layerSizes = [1024, 2048], mediaType: string = MediaType.OciManifest) {
  const docker = mediaType === MediaType.DockerManifest;
  const config = blob(encodeJson({ architecture: 'amd64', os: 'linux', config: { Labels: { label } } }), docker ? MediaType.DockerConfig : MediaType.OciConfig);
  const layers = layerSizes.map((n) => blob(randomBytes(n), docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip));
  const json = JSON.stringify(
    { schemaVersion: 2, mediaType, config: config.desc, layers: layers.map((l) => l.desc), annotations: { label } },
    null,
    1,
  );
  const bytes = Buffer.from(`${json} `);
  return { config, layers, manifest: { desc: { mediaType, digest: digestOf(bytes), size: bytes.length } as Descriptor, bytes } };
}

async function pushImage(repo: Repository, img: ReturnType<typeof makeImage>, tag?: string): Promise<void> {
  await repo.push(img.config.desc, img.config.bytes);
  for (const l of img.layers) await repo.push(l.desc, Readable.from([l.bytes]));
  await repo.pushManifest(img.manifest.desc, img.manifest.bytes, tag !== undefined ? { tag } : {});
  if (tag !== undefined) await repo.pushManifest(img.manifest.desc, img.manifest.bytes);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (isAirlockError(e)) {
      expect(e.code).toBe(code);
      return;
    }
    throw e;
  }
  throw new Error(`expected AirlockError ${code}, but it resolved`);
}

describe('RegistryClient', () => {
  describe('when talking to Distribution 2.8 without auth', () => {
    let reg: StartedRegistry;
    let client: RegistryClient;
    const requests: string[] = [];

    beforeAll(async () => {
      reg = await startDistribution();
      client = new RegistryClient({
        plainHttp: [reg.host],
        credentials: noCredentials,
        chunkSize: 64 * 1024,
        side: 'destination',
        log: (l) => requests.push(l),
      });
    });
    afterAll(async () => {
      await client?.close();
      await reg?.stop();
    });

    it('pushes an image and reads it back byte-identical by tag and by digest', async () => {
      const repo = client.repository(reg.host, 'app/one');
      const img = makeImage('one');
      await pushImage(repo, img, 'v1');

      const byTag = await repo.fetchManifest('v1');
      expect(byTag.bytes.equals(img.manifest.bytes)).toBe(true);
      expect(byTag.desc).toMatchObject({ digest: img.manifest.desc.digest, size: img.manifest.desc.size, mediaType: MediaType.OciManifest });
      const byDigest = await repo.fetchManifest(img.manifest.desc.digest);
      expect(byDigest.bytes.equals(img.manifest.bytes)).toBe(true);

      const resolved = await repo.resolve('v1');
      expect(resolved).toEqual(img.manifest.desc);

      const viaFetch = await readAll(await repo.fetch(img.manifest.desc), 1 << 20);
      expect(viaFetch.equals(img.manifest.bytes)).toBe(true);
      for (const l of [img.config, ...img.layers]) {
        const got = await readAll(await repo.fetch(l.desc), 1 << 20);
        expect(got.equals(l.bytes)).toBe(true);
        expect(await repo.exists(l.desc)).toBe(true);
      }
      expect(await repo.exists(blob(randomBytes(10)).desc)).toBe(false);
    });

    it('writes images skopeo reads as they are, and reads what skopeo writes', async () => {
      const repo = client.repository(reg.host, 'app/skopeo');
      const img = makeImage('skopeo', [700]);
      await pushImage(repo, img, 'v1');
      const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/app/skopeo:v1`], {
        encoding: 'buffer',
        maxBuffer: 1 << 20,
      });
      expect(Buffer.from(raw.stdout).equals(img.manifest.bytes)).toBe(true);
      await run('skopeo', [
        'copy', '--quiet', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false',
        `docker://${reg.host}/app/skopeo:v1`, `docker://${reg.host}/app/skopeo-copy:v1`,
      ]);
      const copy = client.repository(reg.host, 'app/skopeo-copy');
      expect((await copy.fetchManifest('v1')).bytes.equals(img.manifest.bytes)).toBe(true);
      expect((await readAll(await copy.fetch(img.layers[0]!.desc), 1 << 20)).equals(img.layers[0]!.bytes)).toBe(true);
    });

    it('keeps a Docker v2 manifest and its media type', async () => {
      const repo = client.repository(reg.host, 'app/docker');
      const img = makeImage('docker', [512], MediaType.DockerManifest);
      await pushImage(repo, img, 'latest');
      const got = await repo.fetchManifest('latest');
      expect(got.bytes.equals(img.manifest.bytes)).toBe(true);
      expect(got.desc.mediaType).toBe(MediaType.DockerManifest);
    });

    it('pushes an index after its children and reads it back byte-identical', async () => {
      const repo = client.repository(reg.host, 'app/multi');
      const a = makeImage('amd64', [300]);
      const b = makeImage('arm64', [400]);
      await pushImage(repo, a);
      await pushImage(repo, b);
      const index = manifestOf(
        {
          schemaVersion: 2,
          mediaType: MediaType.OciIndex,
          manifests: [
            { ...a.manifest.desc, platform: { architecture: 'amd64', os: 'linux' } },
            { ...b.manifest.desc, platform: { architecture: 'arm64', os: 'linux' } },
          ],
        },
        MediaType.OciIndex,
      );
      await repo.pushManifest(index.desc, index.bytes, { tag: 'multi' });
      const got = await repo.fetchManifest('multi');
      expect(got.bytes.equals(index.bytes)).toBe(true);
      expect(got.desc.mediaType).toBe(MediaType.OciIndex);
      expect((await repo.resolve(index.desc.digest)).digest).toBe(index.desc.digest);
    });

    it('stores an artifact with a subject and finds it through the fallback tag when there is no referrers API', async () => {
      const repo = client.repository(reg.host, 'app/signed');
      const img = makeImage('signed', [100]);
      await pushImage(repo, img, 'v1');
      const empty = blob(Buffer.from('{}'), MediaType.OciEmpty);
      const payload = blob(Buffer.from('{"sig":"x"}'), MediaType.SigstoreBundle03);
      await repo.push(empty.desc, empty.bytes);
      await repo.push(payload.desc, payload.bytes);
      const artifact = manifestOf(
        {
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          artifactType: MediaType.SigstoreBundle03,
          config: empty.desc,
          layers: [payload.desc],
          subject: img.manifest.desc,
        },
        MediaType.OciManifest,
      );
      const { subjectAccepted } = await repo.pushManifest(artifact.desc, artifact.bytes);
      expect(subjectAccepted).toBe(false);
      expect((await repo.fetchManifest(artifact.desc.digest)).bytes.equals(artifact.bytes)).toBe(true);

      expect(await repo.referrers(img.manifest.desc)).toEqual([]);
      expect(repo.referrersApi()).toBe('no');

      const entry: Descriptor = { ...artifact.desc, artifactType: MediaType.SigstoreBundle03 };
      const fallback = manifestOf({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [entry] }, MediaType.OciIndex);
      await repo.pushManifest(fallback.desc, fallback.bytes, { tag: fallbackTag(img.manifest.desc.digest) });
      expect(await repo.referrers(img.manifest.desc)).toEqual([entry]);
      expect(await repo.referrers(img.manifest.desc, { artifactType: 'application/other' })).toEqual([]);
      const fb = await repo.referrersFromFallback(img.manifest.desc);
      expect(fb.bytes?.equals(fallback.bytes)).toBe(true);
      expect(fb.desc?.digest).toBe(fallback.desc.digest);
      expect(await repo.referrersFromApi(img.manifest.desc)).toBeUndefined();
    });

    it('uploads a blob in PATCH chunks and reads the same bytes back', async () => {
      const repo = client.repository(reg.host, 'app/chunked');
      const big = blob(randomBytes(300 * 1024 + 17));
      const parts = [big.bytes.subarray(0, 1000), big.bytes.subarray(1000, 200_000), big.bytes.subarray(200_000)];
      requests.length = 0;
      await repo.push(big.desc, Readable.from(parts), { chunked: true });
      // 300 KiB in 64 KiB chunks: five PATCHes, then the closing PUT
      expect(requests.filter((l) => l.startsWith('PATCH ') && / 202 /.test(l))).toHaveLength(5);
      expect(requests.filter((l) => l.startsWith('PUT ') && / 201 /.test(l))).toHaveLength(1);
      const got = await readAll(await repo.fetch(big.desc), 1 << 20);
      expect(got.equals(big.bytes)).toBe(true);
    });

    it('refuses to push a blob whose bytes do not match its digest, and leaves nothing behind', async () => {
      const repo = client.repository(reg.host, 'app/bad');
      const real = blob(randomBytes(4096));
      const lie: Descriptor = { ...real.desc, digest: digestOf(randomBytes(4096)) };
      await expectCode(repo.push(lie, Readable.from([real.bytes])), 'DIGEST_MISMATCH');
      await expectCode(repo.push(lie, real.bytes), 'DIGEST_MISMATCH');
      await expectCode(repo.push(lie, Readable.from([real.bytes]), { chunked: true }), 'DIGEST_MISMATCH');
      expect(await repo.exists(lie)).toBe(false);
    });

    it('rejects a blob served with bytes that do not hash to its digest', async () => {
      const repo = client.repository(reg.host, 'app/corrupt');
      const b = blob(randomBytes(2048));
      await repo.push(b.desc, b.bytes);
      const hex = b.desc.digest.slice('sha256:'.length);
      const file = join(reg.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
      const corrupted = Buffer.from(await readFile(file));
      corrupted[100] = corrupted[100]! ^ 0xff;
      await writeFile(file, corrupted);
      const stream = await repo.fetch(b.desc);
      await expectCode(readAll(stream, 1 << 20), 'DIGEST_MISMATCH');
    });

    it('skips a blob the registry already has, and mounts across repositories', async () => {
      const src = client.repository(reg.host, 'app/mount-src');
      const dst = client.repository(reg.host, 'app/mount-dst');
      const b = blob(randomBytes(1500));
      await src.push(b.desc, b.bytes);
      // Present already: the content stream is not read (an erroring stream would fail the push).
      const failing = new Readable({ read() { this.destroy(new Error('must not be read')); } });
      await src.push(b.desc, failing);
      expect(await dst.exists(b.desc)).toBe(false);
      expect(await dst.mount(b.desc, 'app/mount-src')).toBe(true);
      expect(await dst.exists(b.desc)).toBe(true);
      const missing = blob(randomBytes(10));
      expect(await dst.mount(missing.desc, 'app/mount-src')).toBe(false);
      expect(await dst.exists(missing.desc)).toBe(false);
    });

    it('lists tags and pages through the catalog', async () => {
      const repo = client.repository(reg.host, 'app/tags');
      const img = makeImage('tags', [10]);
      await pushImage(repo, img, 'a');
      await repo.tag(img.manifest.desc, img.manifest.bytes, 'b');
      await repo.tag(img.manifest.desc, img.manifest.bytes, 'c');
      const tags: string[] = [];
      for await (const t of repo.tags()) tags.push(t);
      expect(tags.sort()).toEqual(['a', 'b', 'c']);

      const repos: string[] = [];
      for await (const r of client.catalog(reg.host, { n: 1 })) repos.push(r);
      expect(repos).toContain('app/tags');
      expect(repos).toContain('app/one');
      expect(new Set(repos).size).toBe(repos.length);
    });

    it('deletes a manifest, and reports NOT_FOUND for it and for unknown tags', async () => {
      const repo = client.repository(reg.host, 'app/delete');
      const img = makeImage('delete', [10]);
      await pushImage(repo, img);
      await repo.deleteManifest(img.manifest.desc.digest);
      await expectCode(repo.fetchManifest(img.manifest.desc.digest), 'NOT_FOUND');
      await expectCode(repo.fetchManifest('no-such-tag'), 'NOT_FOUND');
      await expectCode(repo.resolve('no-such-tag'), 'NOT_FOUND');
      try {
        await repo.fetchManifest('no-such-tag');
      } catch (e) {
        // the registry's own error code is part of the line
        expect((e as Error).message).toMatch(/MANIFEST_UNKNOWN/);
        expect((e as Error).message).toContain(`${reg.host}/app/delete`);
      }
    });
  });

  describe('when Distribution runs with token auth', () => {
    let reg: StartedRegistry;
    let dir: string;

    beforeAll(async () => {
      reg = await startDistribution({ auth: 'token', users: { alice: 'wonderland' }, refreshTokens: { 'refresh-alice': 'alice' } });
      dir = await mkdtemp(join(tmpdir(), 'airlock-auth-'));
    });
    afterAll(async () => {
      await reg?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('pushes and pulls through the challenge and token flow with credentials from an auth file', async () => {
      const authfile = join(dir, 'auth.json');
      await writeFile(authfile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:wonderland').toString('base64') } } }));
      const lines: string[] = [];
      const client = new RegistryClient({
        plainHttp: [reg.host, new URL(reg.tokenServer!.realm).host],
        credentials: loadCredentials({ authfile, env: {}, homedir: dir }),
        log: (l) => lines.push(l),
      });
      try {
        const repo = client.repository(reg.host, 'secure/app');
        const img = makeImage('secure', [256]);
        await pushImage(repo, img, 'v1');
        const got = await repo.fetchManifest('v1');
        expect(got.bytes.equals(img.manifest.bytes)).toBe(true);
        const layer = img.layers[0]!;
        expect((await readAll(await repo.fetch(layer.desc), 1 << 20)).equals(layer.bytes)).toBe(true);
        const asked = reg.tokenServer!.requests.filter((r) => r.user === 'alice');
        expect(asked.some((r) => r.scopes.includes('repository:secure/app:pull,push'))).toBe(true);
        expect(asked.some((r) => r.scopes.includes('repository:secure/app:pull'))).toBe(true);
        // tokens are cached: far fewer token requests than registry requests
        expect(asked.length).toBeLessThan(lines.length / 2);
        expect(lines.join('\n')).not.toMatch(/wonderland|Bearer|Basic/);
      } finally {
        await client.close();
      }
    });

    it('exchanges an identity token from the auth file through the OAuth2 refresh grant', async () => {
      const authfile = join(dir, 'identity.json');
      await writeFile(authfile, JSON.stringify({ auths: { [reg.host]: { auth: '', identitytoken: 'refresh-alice' } } }));
      const client = new RegistryClient({ plainHttp: [reg.host], credentials: loadCredentials({ authfile, env: {}, homedir: dir }) });
      try {
        const repo = client.repository(reg.host, 'secure/identity');
        const img = makeImage('identity', [32]);
        await pushImage(repo, img, 'v1');
        expect((await repo.fetchManifest('v1')).bytes.equals(img.manifest.bytes)).toBe(true);
        expect(reg.tokenServer!.requests.some((r) => r.user === 'alice' && r.scopes.includes('repository:secure/identity:pull,push'))).toBe(true);
      } finally {
        await client.close();
      }
      const bad = new RegistryClient({ plainHttp: [reg.host], credentials: staticCredentials({ [reg.host]: { identityToken: 'stolen' } }), retries: 0 });
      try {
        await expectCode(bad.repository(reg.host, 'secure/identity').fetchManifest('v1'), 'UNAUTHORIZED');
      } finally {
        await bad.close();
      }
    });

    it('is refused UNAUTHORIZED when the token grants less than the operation needs', async () => {
      const scoped = await startDistribution({ auth: 'token', allow: (_u, _t, name, action) => name === 'open/app' || action === 'pull' });
      const client = new RegistryClient({
        plainHttp: [scoped.host],
        credentials: staticCredentials({ [scoped.host]: { username: 'alice', password: 'wonderland' } }),
        retries: 0,
      });
      try {
        const img = makeImage('scoped', [10]);
        await pushImage(client.repository(scoped.host, 'open/app'), img, 'v1');
        const p = client.repository(scoped.host, 'closed/app').push(img.config.desc, img.config.bytes);
        await expectCode(p, 'UNAUTHORIZED');
        await p.catch((e: Error) => {
          expect(e.message).toContain(`${scoped.host}/closed/app`);
          expect(e.message).not.toContain('wonderland');
        });
        // pull alone is granted everywhere, so the repository can still be read from
        await expectCode(client.repository(scoped.host, 'closed/app').fetchManifest('v1'), 'NOT_FOUND');
      } finally {
        await client.close();
        await scoped.stop();
      }
    });

    it('is refused without credentials and with a wrong password', async () => {
      const anon = new RegistryClient({ plainHttp: [reg.host], credentials: noCredentials, retries: 0 });
      const wrong = new RegistryClient({
        plainHttp: [reg.host],
        credentials: staticCredentials({ [reg.host]: { username: 'alice', password: 'nope' } }),
        retries: 0,
      });
      try {
        const img = makeImage('anon', [10]);
        await expectCode(anon.repository(reg.host, 'secure/app').push(img.config.desc, img.config.bytes), 'UNAUTHORIZED');
        await expectCode(anon.repository(reg.host, 'secure/app').fetchManifest('v1'), 'UNAUTHORIZED');
        await expectCode(wrong.repository(reg.host, 'secure/app').fetchManifest('v1'), 'UNAUTHORIZED');
      } finally {
        await anon.close();
        await wrong.close();
      }
    });
  });

  describe('when Distribution runs with htpasswd (basic) auth', () => {
    let reg: StartedRegistry;
    beforeAll(async () => {
      reg = await startDistribution({ auth: 'htpasswd', users: { carol: 'basic-secret' } });
    });
    afterAll(async () => reg?.stop());

    it('pushes and pulls with basic credentials, and is refused without them or with a wrong password', async () => {
      const lines: string[] = [];
      const client = new RegistryClient({
        plainHttp: [reg.host],
        credentials: staticCredentials({ [reg.host]: { username: 'carol', password: 'basic-secret' } }),
        log: (l) => lines.push(l),
      });
      const anon = new RegistryClient({ plainHttp: [reg.host], credentials: noCredentials, retries: 0 });
      const wrong = new RegistryClient({ plainHttp: [reg.host], credentials: staticCredentials({ [reg.host]: { username: 'carol', password: 'nope' } }), retries: 0 });
      try {
        const repo = client.repository(reg.host, 'basic/app');
        const img = makeImage('basic', [128]);
        await pushImage(repo, img, 'v1');
        expect((await repo.fetchManifest('v1')).bytes.equals(img.manifest.bytes)).toBe(true);
        expect(lines.join('\n')).not.toMatch(/basic-secret|Basic [A-Za-z0-9+/=]{8,}/);
        await expectCode(anon.repository(reg.host, 'basic/app').fetchManifest('v1'), 'UNAUTHORIZED');
        await expectCode(wrong.repository(reg.host, 'basic/app').fetchManifest('v1'), 'UNAUTHORIZED');
      } finally {
        await Promise.all([client.close(), anon.close(), wrong.close()]);
      }
    });
  });

  describe('when the registry is flaky', () => {
    let reg: StartedRegistry;
    let proxy: Server;
    let proxyHost: string;
    const faults: { path: string; status: number; retryAfter?: string }[] = [];
    const seen: string[] = [];

    beforeAll(async () => {
      reg = await startDistribution();
      // A forwarding proxy that injects scripted failures before the real registry answers.
      proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
        seen.push(`${req.method} ${req.url}`);
        const i = faults.findIndex((f) => req.url?.startsWith(f.path));
        if (i >= 0) {
          const f = faults.splice(i, 1)[0]!;
          res.writeHead(f.status, f.retryAfter !== undefined ? { 'retry-after': f.retryAfter } : {}).end('try later');
          return;
        }
        const up = httpRequest(
          { host: '127.0.0.1', port: Number(reg.host.split(':')[1]), method: req.method, path: req.url, headers: req.headers },
          (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        req.pipe(up);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      proxy?.closeAllConnections();
      await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
      await reg?.stop();
    });

    it('retries 429 with Retry-After and 503, then succeeds', async () => {
      const client = new RegistryClient({ plainHttp: [proxyHost], credentials: noCredentials, backoffMs: 10 });
      try {
        const repo = client.repository(proxyHost, 'flaky/app');
        const img = makeImage('flaky', [64]);
        await pushImage(repo, img, 'v1');
        const path = '/v2/flaky/app/manifests/v1';
        faults.push({ path, status: 429, retryAfter: '1' }, { path, status: 503 });
        seen.length = 0;
        const got = await repo.fetchManifest('v1');
        expect(got.bytes.equals(img.manifest.bytes)).toBe(true);
        expect(seen.filter((s) => s === `GET ${path}`)).toHaveLength(3);
        expect(faults).toHaveLength(0);
      } finally {
        await client.close();
      }
    });

    it('gives up after the retry budget with a REGISTRY error naming the status', async () => {
      const client = new RegistryClient({ plainHttp: [proxyHost], credentials: noCredentials, backoffMs: 1, retries: 2 });
      try {
        const path = '/v2/flaky/app/manifests/down';
        for (let i = 0; i < 3; i++) faults.push({ path, status: 503 });
        const p = client.repository(proxyHost, 'flaky/app').fetchManifest('down');
        await expectCode(p, 'REGISTRY');
        await p.catch((e: Error) => expect(e.message).toMatch(/HTTP 503/));
      } finally {
        await client.close();
      }
    });
  });

  describe('when a blob GET is redirected', () => {
    let front: Server;
    let storage: Server;
    let frontHost: string;
    const storageAuth: (string | undefined)[] = [];
    const frontAuth: (string | undefined)[] = [];
    const data = randomBytes(5000);
    const digest: Digest = digestOf(data);

    beforeAll(async () => {
      storage = createServer((req, res) => {
        storageAuth.push(req.headers.authorization);
        res.writeHead(200, { 'content-length': String(data.length) }).end(data);
      });
      await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
      const storagePort = (storage.address() as AddressInfo).port;
      // A registry that wants basic auth and keeps its blobs on another origin.
      front = createServer((req, res) => {
        frontAuth.push(req.headers.authorization);
        if (!req.headers.authorization) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
          return;
        }
        if (req.url === `/v2/r/blobs/${digest}`) {
          res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/bucket/blob?sig=abc` }).end();
        } else if (req.url === `/v2/same/blobs/${digest}`) {
          res.writeHead(307, { location: `/v2/r/blobs/${digest}` }).end();
        } else {
          res.writeHead(404).end();
        }
      });
      await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
      frontHost = `127.0.0.1:${(front.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      for (const s of [front, storage]) {
        s?.closeAllConnections();
        await new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
      }
    });

    it('does not carry the Authorization header to another origin, and keeps it on the same origin', async () => {
      const client = new RegistryClient({
        plainHttp: [frontHost],
        credentials: staticCredentials({ [frontHost]: { username: 'u', password: 'p' } }),
      });
      try {
        const desc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest, size: data.length };
        const got = await readAll(await client.repository(frontHost, 'same').fetch(desc), 1 << 20);
        expect(got.equals(data)).toBe(true);
        expect(storageAuth).toEqual([undefined]);
        const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
        // 401 first, then the credentialed request, then the same-origin hop keeping them
        expect(frontAuth).toEqual([undefined, basic, basic]);
      } finally {
        await client.close();
      }
    });
  });
});
