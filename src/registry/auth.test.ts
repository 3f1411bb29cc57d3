import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../errors.js';
import { loadCredentials, parseChallenges, staticCredentials } from './auth.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('loadCredentials', () => {
  let dir: string;
  let home: string;
  let xdg: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-auth-unit-'));
    home = join(dir, 'home');
    xdg = join(dir, 'run');
    await mkdir(join(home, '.docker'), { recursive: true });
    await mkdir(join(xdg, 'containers'), { recursive: true });
    await writeFile(
      join(home, '.docker', 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
          'quay.io': { auth: b64('docker:quay') },
          'docker-only.example': { auth: b64('d:pass:with:colons') },
          'https://scheme.example': { auth: b64('s:p') },
        },
      }),
    );
    await writeFile(join(xdg, 'containers', 'auth.json'), JSON.stringify({ auths: { 'quay.io': { auth: b64('podman:quay') } } }));
    await writeFile(join(dir, 'env.json'), JSON.stringify({ auths: { 'env.example': { identitytoken: 'refresh-me' } } }));
    await writeFile(join(dir, 'flag.json'), JSON.stringify({ auths: { 'quay.io': { auth: b64('flag:quay') } } }));
    await writeFile(join(dir, 'broken.json'), '{"auths": {"x": {"auth": "secret-ish"');
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('when several files have an entry', () => {
    it('takes --authfile first, then REGISTRY_AUTH_FILE, then XDG containers/auth.json, then ~/.docker/config.json', () => {
      const env = { REGISTRY_AUTH_FILE: join(dir, 'env.json'), XDG_RUNTIME_DIR: xdg };
      expect(loadCredentials({ authfile: join(dir, 'flag.json'), env, homedir: home }).get('quay.io')).toEqual({ username: 'flag', password: 'quay' });
      expect(loadCredentials({ env, homedir: home }).get('quay.io')).toEqual({ username: 'podman', password: 'quay' });
      expect(loadCredentials({ env: {}, homedir: home }).get('quay.io')).toEqual({ username: 'docker', password: 'quay' });
      expect(loadCredentials({ env, homedir: home }).get('env.example')).toEqual({ identityToken: 'refresh-me' });
    });
  });

  describe('when matching hosts', () => {
    it('knows Docker Hub aliases, schemes, and passwords with colons', () => {
      const c = loadCredentials({ env: {}, homedir: home });
      for (const h of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) expect(c.get(h)).toEqual({ username: 'hubuser', password: 'hubpass' });
      expect(c.get('scheme.example')).toEqual({ username: 's', password: 'p' });
      expect(c.get('docker-only.example')).toEqual({ username: 'd', password: 'pass:with:colons' });
      expect(c.get('unknown.example')).toBeUndefined();
      expect(staticCredentials({ 'r.example:5000': { username: 'a', password: 'b' } }).get('r.example:5000')).toEqual({ username: 'a', password: 'b' });
    });
  });

  describe('when a file is missing or broken', () => {
    it('ignores missing default files but not a missing --authfile', () => {
      expect(loadCredentials({ env: {}, homedir: join(dir, 'nobody') }).get('quay.io')).toBeUndefined();
      try {
        loadCredentials({ authfile: join(dir, 'nope.json'), env: {}, homedir: home });
        expect.unreachable();
      } catch (e) {
        expect(isAirlockError(e, 'USAGE')).toBe(true);
      }
    });
    it('says which file is not JSON without quoting its content', () => {
      try {
        loadCredentials({ authfile: join(dir, 'broken.json'), env: {}, homedir: home });
        expect.unreachable();
      } catch (e) {
        expect(isAirlockError(e, 'CONFIG')).toBe(true);
        expect((e as Error).message).toContain('broken.json');
        expect((e as Error).message).not.toContain('secret-ish');
      }
    });
  });
});

describe('parseChallenges', () => {
  it('reads a Bearer challenge with quoted params', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' } },
    ]);
  });
  it('reads several challenges, escapes and unquoted values', () => {
    expect(parseChallenges('Basic realm="x \\"y\\"", Bearer realm=https://t.example/token, error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'x "y"' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/token', error: 'insufficient_scope' } },
    ]);
  });
  it('returns nothing for an absent header', () => {
    expect(parseChallenges(undefined)).toEqual([]);
  });
});
