import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRUST } from '../src/config/trust-policy.js';
import { isAirlockError } from '../src/errors.js';
import { sha256 } from '../src/oci/digest.js';
import { carriedTrustRoots } from '../src/trust/collect.js';
import { REDHAT_RELEASE_KEY_3 } from '../src/trust/defaults.js';
import { loadTrust } from '../src/verify/index.js';
import { fixtureKeys, startRekorMock, type RekorMock } from './support/fixtures/index.js';
import { serveFiles } from './support/key-server.js';
import { runCli } from './support/run-cli.js';

describe('carried trust roots', () => {
  let rekor: RekorMock;
  let srv: { url: string; stop(): Promise<void> };
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-trust-'));
    rekor = await startRekorMock();
    const keys = await fixtureKeys();
    srv = await serveFiles({ '/rekor.pub': rekor.publicKeyPem, '/release3.txt': keys.rsa.publicKeyPem, '/garbage.txt': 'not a key' });
  });
  afterAll(async () => {
    await Promise.all([rekor?.stop(), srv?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('when the default configuration is used', () => {
    it("carries Red Hat's shipped release key (sha256 checked) and the fetched Rekor key, each with source and time", async () => {
      const now = new Date('2026-01-02T03:04:05Z');
      const roots = await carriedTrustRoots({ ...DEFAULT_TRUST, rekorKeyUrl: `${srv.url}/rekor.pub` }, { env: {}, now });
      expect(roots.map((r) => r.name)).toEqual(['redhat', 'redhat-rekor']);
      const rh = roots[0]!;
      expect(createHash('sha256').update(rh.bytes).digest('hex')).toBe(REDHAT_RELEASE_KEY_3.sha256);
      expect(rh.bytes.equals(await readFile(new URL('../trust/redhat-release3.pub', import.meta.url)))).toBe(true);
      expect(rh).toMatchObject({ kind: 'public-key', source: 'https://security.access.redhat.com/data/63405576.txt', fetchedAt: 'shipped with airlock' });
      expect(roots[1]).toMatchObject({ kind: 'rekor-key', source: `${srv.url}/rekor.pub`, fetchedAt: now.toISOString() });
      expect(roots[1]!.bytes.toString()).toBe(rekor.publicKeyPem);
      // what travels loads as one signing key and one log, the log named by its key ID
      const trust = loadTrust(roots.map((r) => ({ name: r.name, kind: r.kind, digest: sha256(r.bytes), bytes: r.bytes })));
      expect(trust.keys.map((k) => [k.name, k.key.asymmetricKeyType, k.key.asymmetricKeyDetails?.modulusLength])).toEqual([['redhat', 'rsa', 4096]]);
      expect(trust.logs.map((l) => l.name)).toEqual(['redhat-rekor']);
    });
  });

  describe('when Red Hat\'s key is refreshed', () => {
    it('fetches it from its URL and records that source', async () => {
      const roots = await carriedTrustRoots({ ...DEFAULT_TRUST, rekorKeyUrl: `${srv.url}/rekor.pub` }, { env: {}, refreshRedHatKey: true, redhatKeyUrl: `${srv.url}/release3.txt` });
      expect(roots[0]!.source).toBe(`${srv.url}/release3.txt`);
      expect(roots[0]!.bytes.toString()).toBe((await fixtureKeys()).rsa.publicKeyPem);
    });

    it('fails naming the root when what it fetched is not a key', async () => {
      const e = await carriedTrustRoots({ ...DEFAULT_TRUST, rekorKeyUrl: `${srv.url}/rekor.pub` }, { env: {}, refreshRedHatKey: true, redhatKeyUrl: `${srv.url}/garbage.txt` }).catch((x: unknown) => x);
      expect(isAirlockError(e, 'TRUST')).toBe(true);
      expect((e as Error).message).toMatch(/^Red Hat release key 3 \(http:\/\/127\.0\.0\.1:\d+\/garbage\.txt\): not a PEM public key/);
    });
  });

  describe('when a configured root cannot be obtained', () => {
    it('pack fails naming it, and writes nothing', async () => {
      await writeFile(path.join(dir, 'set.yaml'), ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'images: [127.0.0.1:1/a/b:1]', 'trust:', `  rekorKeyUrl: ${srv.url}/missing.pub`, ''].join('\n'));
      const r = await runCli(['pack', '--config', path.join(dir, 'set.yaml'), '-o', path.join(dir, 'out.tar')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/airlock: Red Hat's Rekor public key: cannot fetch http:\/\/127\.0\.0\.1:\d+\/missing\.pub \(HTTP 404\)/);
      await expect(readFile(path.join(dir, 'out.tar'))).rejects.toThrow();
    });

    it('a user key file that is not a key fails naming it', async () => {
      await writeFile(path.join(dir, 'bad.pub'), 'nope');
      const e = await carriedTrustRoots({ ...DEFAULT_TRUST, redhat: false, keys: [{ name: 'team', path: path.join(dir, 'bad.pub'), source: {} }] }, { env: {} }).catch((x: unknown) => x);
      expect((e as Error).message).toMatch(/^key team \(.*bad\.pub\): not a PEM public key/);
    });
  });
});
