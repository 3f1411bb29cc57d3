import { readFileSync } from 'node:fs';
import { homedir as osHomedir } from 'node:os';
import { join } from 'node:path';
import { AirlockError } from '../errors.js';

/**
 * Registry credentials, read from the files docker, podman and skopeo write.
 * Nothing here prints or keeps a secret beyond the store object itself.
 */
export type Credential = { username: string; password: string } | { identityToken: string };

export interface CredentialStore {
  get(registry: string): Credential | undefined;
}

export interface LoadCredentialsOptions {
  /** --authfile: must exist when given */
  authfile?: string;
  env?: NodeJS.ProcessEnv;
  homedir?: string;
}

/** Docker Hub is known under several names; config files use any of them. */
const DOCKER_HUB = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];

/**
 * The credential files, in precedence order: --authfile, REGISTRY_AUTH_FILE,
 * ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.docker/config.json. A registry's
 * entry is taken from the first file that has one.
 */
export function loadCredentials(options: LoadCredentialsOptions = {}): CredentialStore {
  const env = options.env ?? process.env;
  const home = options.homedir ?? osHomedir();
  const files: { path: string; required: boolean }[] = [];
  if (options.authfile !== undefined) files.push({ path: options.authfile, required: true });
  if (env.REGISTRY_AUTH_FILE) files.push({ path: env.REGISTRY_AUTH_FILE, required: true });
  if (env.XDG_RUNTIME_DIR) files.push({ path: join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'), required: false });
  files.push({ path: join(env.DOCKER_CONFIG ?? join(home, '.docker'), 'config.json'), required: false });
  const maps = files.map((f) => readAuthFile(f.path, f.required));
  return {
    get(registry: string): Credential | undefined {
      for (const m of maps) {
        const c = lookup(m, registry);
        if (c) return c;
      }
      return undefined;
    },
  };
}

/** A store over fixed entries (tests, programmatic use). */
export function staticCredentials(entries: Record<string, Credential>): CredentialStore {
  const m = new Map(Object.entries(entries));
  return { get: (registry) => lookup(m, registry) };
}

export const noCredentials: CredentialStore = { get: () => undefined };

function lookup(m: Map<string, Credential>, registry: string): Credential | undefined {
  const names = DOCKER_HUB.includes(registry) ? DOCKER_HUB : [registry];
  for (const n of names) {
    const c = m.get(n) ?? m.get(`https://${n}`) ?? m.get(`http://${n}`) ?? m.get(`https://${n}/v1/`) ?? m.get(`https://${n}/v2/`);
    if (c) return c;
  }
  return undefined;
}

function readAuthFile(path: string, required: boolean): Map<string, Credential> {
  const out = new Map<string, Credential>();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw new AirlockError('USAGE', `auth file ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}); check --authfile / REGISTRY_AUTH_FILE`, { side: 'local' });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The message deliberately omits the parser's text: it may quote a secret.
    throw new AirlockError('CONFIG', `auth file ${path}: is not valid JSON`, { side: 'local' });
  }
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null) return out;
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as Record<string, unknown>;
    const host = normalizeKey(key);
    if (typeof e.identitytoken === 'string' && e.identitytoken !== '') {
      out.set(host, { identityToken: e.identitytoken });
      continue;
    }
    if (typeof e.auth === 'string' && e.auth !== '') {
      const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i <= 0) throw new AirlockError('CONFIG', `auth file ${path}: the entry for ${host} is not base64 of user:password`, { side: 'local' });
      out.set(host, { username: decoded.slice(0, i), password: decoded.slice(i + 1) });
    } else if (typeof e.username === 'string' && typeof e.password === 'string') {
      out.set(host, { username: e.username, password: e.password });
    }
  }
  return out;
}

/** `https://quay.io/v1/` → `quay.io`; keeps Docker Hub's legacy key as it is. */
function normalizeKey(key: string): string {
  if (key === 'https://index.docker.io/v1/') return key;
  return key.replace(/^https?:\/\//, '').replace(/\/(v1|v2)\/?$/, '').replace(/\/$/, '');
}

/** One challenge from `WWW-Authenticate` (RFC 9110 §11.6.1), e.g. `Bearer realm="…",service="…"`. */
export interface Challenge {
  scheme: string; // lower-cased
  params: Record<string, string>;
}

export function parseChallenges(value: string | undefined): Challenge[] {
  if (!value) return [];
  const out: Challenge[] = [];
  let cur: Challenge | undefined;
  let i = 0;
  const n = value.length;
  const isTokenChar = (c: string): boolean => /[A-Za-z0-9!#$%&'*+.^_`|~/-]/.test(c);
  while (i < n) {
    while (i < n && (value[i] === ' ' || value[i] === ',' || value[i] === '\t')) i++;
    const start = i;
    while (i < n && isTokenChar(value[i]!)) i++;
    if (i === start) {
      i++; // skip a character we do not understand
      continue;
    }
    const name = value.slice(start, i);
    let j = i;
    while (j < n && value[j] === ' ') j++;
    if (value[j] === '=' && value[j + 1] !== '=' && cur) {
      j++;
      while (j < n && value[j] === ' ') j++;
      let v = '';
      if (value[j] === '"') {
        j++;
        while (j < n && value[j] !== '"') {
          if (value[j] === '\\' && j + 1 < n) j++;
          v += value[j];
          j++;
        }
        j++;
      } else {
        const vs = j;
        while (j < n && value[j] !== ',' && value[j] !== ' ') j++;
        v = value.slice(vs, j);
      }
      cur.params[name.toLowerCase()] = v;
      i = j;
    } else if (value[j] === '=') {
      // token68 after a scheme (e.g. "Basic abc=="): skip it
      while (j < n && value[j] !== ',') j++;
      i = j;
    } else {
      cur = { scheme: name.toLowerCase(), params: {} };
      out.push(cur);
    }
  }
  return out;
}
