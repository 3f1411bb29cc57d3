import * as path from 'node:path';
import { Reference } from '../oci/reference.js';
import type { YamlCursor } from './yaml-node.js';

/**
 * Trust roots and verification policies. Reserved for the verification issue:
 * parsed and validated now so files written today keep working, consumed by
 * `src/trust` and `src/verify` later.
 */
export interface TrustConfig {
  /** carry Red Hat's release key 3 (and Red Hat's Rekor key); on by default */
  readonly redhat: boolean;
  /** where pack fetches Red Hat's Rekor public key */
  readonly rekorKeyUrl: string;
  /** extra public keys (PEM), by name */
  readonly keys: readonly NamedFile[];
  /** extra Sigstore `trusted_root.json` files, by name */
  readonly trustedRoots: readonly NamedFile[];
  /** carry the public-good Sigstore trusted root (Fulcio, Rekor, CT logs); off by default */
  readonly sigstorePublicGood: boolean;
}

export interface NamedFile {
  readonly name: string;
  /** absolute; a relative path in the file is resolved against the file's directory */
  readonly path: string;
  readonly source: SourcePos;
}

export type PolicyRequirement = 'signature' | 'none';

export interface PolicyConfig {
  /** host, host/namespace, host/repo[:tag|@digest], or `*.domain` (as ClusterImagePolicy scopes) */
  readonly scopes: readonly string[];
  /** names of trust roots (built-in `redhat`, `sigstore-public-good`, or a key/trustedRoot name) */
  readonly roots: readonly string[];
  readonly require: PolicyRequirement;
  /** require a transparency-log entry (Rekor) for each signature; default true */
  readonly transparencyLog: boolean;
  /** who a keyless (Fulcio certificate) signature must come from; keyless signatures count only with it */
  readonly identity?: PolicyIdentity;
  readonly source: SourcePos;
}

/**
 * A keyless signer: the OIDC issuer Fulcio wrote into the certificate (extension
 * 1.3.6.1.4.1.57264.1.8, or the older .1.1) and the subject (the SAN email or URI),
 * exactly or by a regular expression anchored at both ends.
 */
export interface PolicyIdentity {
  readonly issuer: string;
  readonly subject?: string;
  readonly subjectRegExp?: string;
}

export interface SourcePos {
  readonly file?: string;
  readonly line?: number;
}

/** Red Hat publishes its Rekor key through its Rekor TUF service (see FIELD-NOTES). */
export const REDHAT_REKOR_KEY_URL = 'https://tuf-default.apps.rosa.rekor-prod.2jng.p3.openshiftapps.com/targets/rekor.pub';
export const ROOT_REDHAT = 'redhat';
export const ROOT_SIGSTORE_PUBLIC_GOOD = 'sigstore-public-good';

export const DEFAULT_TRUST: TrustConfig = Object.freeze({
  redhat: true,
  rekorKeyUrl: REDHAT_REKOR_KEY_URL,
  keys: [],
  trustedRoots: [],
  sigstorePublicGood: false,
});

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A local file the loader must check exists, with the cursor that names it. */
export interface FileCheck {
  readonly path: string;
  readonly at: YamlCursor;
}

export function parseTrust(c: YamlCursor, baseDir: string, files: FileCheck[]): TrustConfig {
  const f = c.map(['redhat', 'rekorKeyUrl', 'keys', 'trustedRoots', 'sigstorePublicGood'], 'a mapping of trust settings');
  const redhat = f.get('redhat');
  const rekor = f.get('rekorKeyUrl');
  const keys = f.get('keys');
  const roots = f.get('trustedRoots');
  const pg = f.get('sigstorePublicGood');
  let rekorKeyUrl = REDHAT_REKOR_KEY_URL;
  if (rekor?.present === true) {
    const s = rekor.str('an http(s) URL');
    let u: URL | undefined;
    try {
      u = new URL(s);
    } catch {
      u = undefined;
    }
    if (u === undefined || (u.protocol !== 'https:' && u.protocol !== 'http:')) {
      return rekor.fail(`"${s}" is not an http(s) URL; write e.g. ${REDHAT_REKOR_KEY_URL}`);
    }
    if (u.username !== '' || u.password !== '') rekor.fail('must not carry credentials (user:password@) in the URL');
    rekorKeyUrl = s;
  }
  const names = new Map<string, YamlCursor>();
  const named = (list: YamlCursor | undefined, what: string): NamedFile[] =>
    list?.present === true
      ? list.seq(`a list of {name, path} ${what}`).map((item) => {
          const m = item.map(['name', 'path'], `a {name, path} mapping`);
          const name = requireField(item, m, 'name').str('a name');
          const nameC = m.get('name') as YamlCursor;
          if (!NAME_RE.test(name)) nameC.fail(`"${name}" is not a valid name (lower-case letters, digits, . _ -; at most 63)`);
          if (name === ROOT_REDHAT || name === ROOT_SIGSTORE_PUBLIC_GOOD) {
            nameC.fail(`"${name}" is the name of a built-in trust root; choose another name`);
          }
          const earlier = names.get(name);
          if (earlier !== undefined) nameC.fail(`"${name}" is already used at ${earlier.path} (line ${earlier.line}); names must be unique`);
          names.set(name, nameC);
          const pathC = requireField(item, m, 'path');
          const p = pathC.str('a file path');
          if (p.trim() === '') pathC.fail('must not be empty');
          const abs = path.resolve(baseDir, p);
          files.push({ path: abs, at: pathC });
          return { name, path: abs, source: { file: item.file, line: item.line } };
        })
      : [];
  return Object.freeze({
    redhat: redhat?.present === true ? redhat.bool() : true,
    rekorKeyUrl,
    keys: Object.freeze(named(keys, 'public keys')),
    trustedRoots: Object.freeze(named(roots, 'trusted roots')),
    sigstorePublicGood: pg?.present === true ? pg.bool() : false,
  });
}

/** The trust-root names a policy may refer to under this trust configuration. */
export function rootNames(trust: TrustConfig): string[] {
  const out: string[] = [];
  if (trust.redhat) out.push(ROOT_REDHAT);
  if (trust.sigstorePublicGood) out.push(ROOT_SIGSTORE_PUBLIC_GOOD);
  for (const k of trust.keys) out.push(k.name);
  for (const r of trust.trustedRoots) out.push(r.name);
  return out;
}

export function parsePolicies(c: YamlCursor, trust: TrustConfig): PolicyConfig[] {
  const known = rootNames(trust);
  return c.seq('a list of policies').map((item) => {
    const m = item.map(['scopes', 'roots', 'require', 'transparencyLog', 'identity'], 'a policy mapping');
    const scopesC = requireField(item, m, 'scopes');
    const scopes = scopesC.seq('a list of scopes').map((s) => {
      const v = s.str('a scope');
      const why = scopeProblem(v);
      if (why !== undefined) s.fail(`"${v}" ${why}; write a host, host/namespace, host/repository, or *.domain`);
      return v;
    });
    if (scopes.length === 0) scopesC.fail('must list at least one scope');
    const reqC = m.get('require');
    let require: PolicyRequirement = 'signature';
    if (reqC?.present === true) {
      const r = reqC.str('signature or none');
      if (r !== 'signature' && r !== 'none') return reqC.fail(`"${r}" is not one of: signature, none`);
      require = r;
    }
    const rootsC = m.get('roots');
    const roots =
      rootsC?.present === true
        ? rootsC.seq('a list of trust-root names').map((r) => {
            const name = r.str('a trust-root name');
            if (!known.includes(name)) {
              r.fail(
                `no trust root named "${name}"; known: ${known.length > 0 ? known.join(', ') : '(none)'}` +
                  (name === ROOT_REDHAT || name === ROOT_SIGSTORE_PUBLIC_GOOD ? ` (enable it under trust:)` : ''),
              );
            }
            return name;
          })
        : [];
    if (require === 'signature' && roots.length === 0) {
      (rootsC ?? item).fail('a policy that requires a signature must name at least one trust root in roots', null, `${item.path}.roots`);
    }
    if (require === 'none' && roots.length > 0) {
      (rootsC as YamlCursor).fail('has no effect with require: none; remove roots or require a signature');
    }
    const tl = m.get('transparencyLog');
    const idC = m.get('identity');
    const identity = idC?.present === true ? parseIdentity(idC) : undefined;
    return Object.freeze({
      scopes: Object.freeze(scopes),
      roots: Object.freeze(roots),
      require,
      transparencyLog: tl?.present === true ? tl.bool() : true,
      ...(identity ? { identity } : {}),
      source: { file: item.file, line: item.line },
    });
  });
}

function parseIdentity(c: YamlCursor): PolicyIdentity {
  const m = c.map(['issuer', 'subject', 'subjectRegExp'], 'a mapping {issuer, subject | subjectRegExp}');
  const issuerC = requireField(c, m, 'issuer');
  const issuer = issuerC.str('an OIDC issuer URL');
  if (issuer.trim() === '') issuerC.fail('must not be empty; write e.g. https://accounts.google.com');
  const subC = m.get('subject');
  const reC = m.get('subjectRegExp');
  const subject = subC?.present === true ? subC.str('an email or URI') : undefined;
  const subjectRegExp = reC?.present === true ? reC.str('a regular expression') : undefined;
  if (subject !== undefined && subjectRegExp !== undefined) (reC as YamlCursor).fail('give subject or subjectRegExp, not both');
  if (subjectRegExp !== undefined) {
    try {
      new RegExp(subjectRegExp);
    } catch (e) {
      (reC as YamlCursor).fail(`is not a valid regular expression (${(e as Error).message})`);
    }
  }
  return Object.freeze({ issuer, ...(subject !== undefined ? { subject } : {}), ...(subjectRegExp !== undefined ? { subjectRegExp } : {}) });
}

/** Why a policy scope is not valid, or undefined when it is. */
export function scopeProblem(scope: string): string | undefined {
  if (scope.startsWith('*.')) {
    return /^\*\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i.test(scope)
      ? undefined
      : 'is not a valid wildcard domain';
  }
  if (scope.includes('*')) return 'may use * only as a leading "*." wildcard';
  const host = scope.split('/')[0] ?? '';
  if (!isRegistryHost(host)) return `does not start with a registry host ("${host}" needs a dot, a port, or to be localhost)`;
  if (!scope.includes('/')) return undefined;
  try {
    Reference.parse(scope);
    return undefined;
  } catch (e) {
    return `is not a valid repository scope (${(e as Error).message.replace(/^image reference "[^"]*": /, '')})`;
  }
}

/** A string that Reference.parse would take as the registry host (not as a Docker Hub path). */
export function isRegistryHost(host: string): boolean {
  try {
    return Reference.parse(`${host}/x`).registry === host;
  } catch {
    return false;
  }
}

function requireField(item: YamlCursor, m: Map<string, YamlCursor>, key: string): YamlCursor {
  const v = m.get(key);
  if (v === undefined || !v.present) item.fail(`is missing the required field "${key}"`, null, item.child(key));
  return v;
}

export { requireField };
