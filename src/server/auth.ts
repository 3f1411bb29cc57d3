import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { AirlockError } from '../errors.js';
import { NAME_PATTERN } from './backend.js';
import { KeyedMutex } from './mutex.js';

/**
 * Who may do what on `airlock serve` (docs/serve.md "Authentication").
 *
 * Users are kept in htpasswd files with bcrypt hashes, the format Distribution and Quay
 * read (`htpasswd -B`): `--htpasswd FILE` holds the users who may pull and push,
 * `--htpasswd-readonly FILE` those who may only pull. `--access FILE` narrows either to
 * some repositories. Clients authenticate with HTTP Basic (RFC 7617), so the password
 * crosses the wire on every request: serve TLS, or stay on loopback.
 */
export type Access = 'pull' | 'push';

export interface Principal {
  /** the authenticated user; undefined on a registry without authentication */
  readonly user: string | undefined;
}

export interface AccessControl {
  /** false: every request acts as the anonymous principal, with every right */
  readonly enabled: boolean;
  /** the `realm` of the `WWW-Authenticate: Basic` challenge */
  readonly realm: string;
  /** the principal of a request's Authorization header; undefined when it does not authenticate */
  authenticate(authorization: string | undefined): Promise<Principal | undefined>;
  allows(p: Principal, repo: string, access: Access): boolean;
  /** how many users of each kind (for the start line) */
  readonly summary: string;
}

/** No authentication: for loopback, or behind a proxy that authenticates. */
export const OPEN_ACCESS: AccessControl = {
  enabled: false,
  realm: 'airlock',
  authenticate: () => Promise.resolve({ user: undefined }),
  allows: () => true,
  summary: 'no authentication',
};

export interface AccessFiles {
  /** users who may pull and push */
  htpasswd?: string;
  /** users who may only pull */
  htpasswdReadOnly?: string;
  /** per-repository rules (`USER pull|push REPOSITORY...`) */
  access?: string;
  realm?: string;
}

interface Grant {
  readonly access: Access;
  readonly pattern: string;
}

/** bcrypt as htpasswd -B, Distribution and Quay write it: `$2y$`, `$2a$` or `$2b$`, cost, 53 characters. */
const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const PATTERN_RE = new RegExp(`^(?:\\*|${NAME_PATTERN}(?:/\\*)?)$`);
const CACHE_TTL_MS = 5 * 60 * 1000;
const CACHE_MAX = 1024;
/** bcrypt is slow on purpose; bounding concurrent checks keeps a flood of guesses from starving the server */
const PARALLEL_CHECKS = 2;

export async function loadAccessControl(files: AccessFiles): Promise<AccessControl> {
  if (files.htpasswd === undefined && files.htpasswdReadOnly === undefined) {
    if (files.access !== undefined) throw new AirlockError('CONFIG', '--access needs users: give --htpasswd FILE and/or --htpasswd-readonly FILE');
    return OPEN_ACCESS;
  }
  const hashes = new Map<string, string>();
  const readOnly = new Set<string>();
  for (const [file, ro] of [
    [files.htpasswd, false],
    [files.htpasswdReadOnly, true],
  ] as const) {
    if (file === undefined) continue;
    for (const { user, hash, line } of parseHtpasswd(file, await readConfig(file))) {
      if (hashes.has(user)) {
        throw new AirlockError('CONFIG', `${file}:${line}: user "${user}" is listed twice (a user is either read-write, in --htpasswd, or read-only, in --htpasswd-readonly)`);
      }
      hashes.set(user, hash);
      if (ro) readOnly.add(user);
    }
  }
  if (hashes.size === 0) throw new AirlockError('CONFIG', 'the htpasswd files list no users; add one with: htpasswd -B FILE USER');
  const rules = files.access === undefined ? undefined : parseAccess(files.access, await readConfig(files.access), hashes, readOnly);
  return new HtpasswdAccess(hashes, readOnly, rules, files.realm ?? 'airlock');
}

async function readConfig(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new AirlockError('CONFIG', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** `user:hash` lines; blank lines and `#` comments are skipped. Only bcrypt hashes are accepted. */
export function parseHtpasswd(file: string, text: string): Array<{ user: string; hash: string; line: number }> {
  const out: Array<{ user: string; hash: string; line: number }> = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = colon > 0 ? line.slice(0, colon) : '';
    const hash = colon > 0 ? line.slice(colon + 1).trim() : '';
    if (user === '' || /[\s\0]/.test(user)) throw new AirlockError('CONFIG', `${file}:${i + 1}: not a "user:hash" line`);
    if (!BCRYPT_RE.test(hash)) {
      throw new AirlockError('CONFIG', `${file}:${i + 1}: user "${user}" has a hash that is not bcrypt; only bcrypt is accepted (create it with: htpasswd -B ${file} ${user})`);
    }
    out.push({ user, hash, line: i + 1 });
  });
  return out;
}

/**
 * `USER ACCESS REPOSITORY...` lines: USER a user of the htpasswd files or `*` (every user),
 * ACCESS `pull` or `push` (push includes pull), REPOSITORY a name, `team/*` (every
 * repository under team/, at any depth) or `*` (all). Rules add up.
 */
export function parseAccess(file: string, text: string, users: ReadonlyMap<string, string>, readOnly: ReadonlySet<string>): Map<string, Grant[]> {
  const rules = new Map<string, Grant[]>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const [user, access, ...patterns] = line.split(/\s+/);
    const where = `${file}:${i + 1}`;
    if (access !== 'pull' && access !== 'push') throw new AirlockError('CONFIG', `${where}: the access is "${access ?? ''}"; write USER pull|push REPOSITORY...`);
    if (patterns.length === 0) throw new AirlockError('CONFIG', `${where}: no repository; write a name, team/* or *`);
    if (user !== '*' && !users.has(user!)) throw new AirlockError('CONFIG', `${where}: "${user}" is not a user of the htpasswd files`);
    if (access === 'push' && (user === '*' ? readOnly.size > 0 : readOnly.has(user!))) {
      throw new AirlockError('CONFIG', `${where}: grants push to ${user === '*' ? 'every user, including' : ''} read-only user(s) of --htpasswd-readonly; move them to --htpasswd or grant pull`);
    }
    for (const p of patterns) {
      if (!PATTERN_RE.test(p)) throw new AirlockError('CONFIG', `${where}: "${p}" is not a repository name, NAME/* or *`);
      const list = rules.get(user!) ?? [];
      list.push({ access, pattern: p });
      rules.set(user!, list);
    }
  });
  return rules;
}

function matches(pattern: string, repo: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return repo.startsWith(pattern.slice(0, -1));
  return pattern === repo;
}

class HtpasswdAccess implements AccessControl {
  readonly enabled = true;
  readonly realm: string;
  readonly summary: string;
  readonly #hashes: ReadonlyMap<string, string>;
  readonly #readOnly: ReadonlySet<string>;
  readonly #rules: ReadonlyMap<string, Grant[]> | undefined;
  /** HMAC(process key, user NUL password) of recent successes: bcrypt once per client, not per request */
  readonly #cache = new Map<string, { user: string; until: number }>();
  readonly #key = randomBytes(32);
  readonly #slots = new KeyedMutex();
  #slot = 0;
  /** compared against for an unknown user, so that it costs what a wrong password costs */
  readonly #decoy: string;

  constructor(hashes: ReadonlyMap<string, string>, readOnly: ReadonlySet<string>, rules: ReadonlyMap<string, Grant[]> | undefined, realm: string) {
    this.#hashes = hashes;
    this.#readOnly = readOnly;
    this.#rules = rules;
    this.realm = realm.replace(/["\\]/g, '');
    const first = hashes.values().next().value as string;
    this.#decoy = bcrypt.hashSync(randomBytes(16).toString('hex'), Number(BCRYPT_RE.exec(first)![1]));
    const rw = hashes.size - readOnly.size;
    this.summary = `basic auth, ${rw} read-write and ${readOnly.size} read-only user(s)${rules ? `, ${[...rules.values()].flat().length} access rule(s)` : ''}`;
  }

  async authenticate(authorization: string | undefined): Promise<Principal | undefined> {
    const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return undefined;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const key = createHmac('sha256', this.#key).update(user).update('\0').update(password).digest('hex');
    const now = Date.now();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now && hit.user === user) return { user };
    if (hit) this.#cache.delete(key);
    const hash = this.#hashes.get(user);
    // An unknown user and a wrong password take the same path, the same time and the
    // same answer: nothing tells a guesser which names exist.
    const ok = await this.#slots.run(`bcrypt:${this.#slot++ % PARALLEL_CHECKS}`, () => bcrypt.compare(password, hash ?? this.#decoy));
    if (!ok || hash === undefined) return undefined;
    if (this.#cache.size >= CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(key, { user, until: now + CACHE_TTL_MS });
    return { user };
  }

  allows(p: Principal, repo: string, access: Access): boolean {
    const user = p.user;
    if (user === undefined || !this.#hashes.has(user)) return false;
    if (access === 'push' && this.#readOnly.has(user)) return false;
    if (!this.#rules) return true;
    const grants = [...(this.#rules.get(user) ?? []), ...(this.#rules.get('*') ?? [])];
    return grants.some((g) => (access === 'pull' || g.access === 'push') && matches(g.pattern, repo));
  }
}
