import { AirlockError } from '../errors.js';
import { parsePolicies, ROOT_REDHAT, type PolicyConfig, type PolicyIdentity, type TrustConfig } from '../config/trust-policy.js';
import { parseYaml } from '../config/yaml-node.js';
import { REDHAT_RELEASE_KEY_3 } from '../trust/defaults.js';

/**
 * A verification policy: the repositories it covers (scopes, as ClusterImagePolicy
 * and containers-policy.json scopes), the trust roots whose signatures count there,
 * whether a signature is required, and whether each signature needs a Rekor entry.
 */
export interface Policy {
  name: string;
  scopes: readonly string[];
  roots: readonly string[];
  require: 'signature' | 'none';
  transparencyLog: boolean;
  /** the keyless signer a Fulcio certificate must name; without it keyless signatures do not count */
  identity?: PolicyIdentity;
  origin: 'default' | 'archive' | 'file';
}

/** The Rekor key that goes with a signing root (RHEL's policy.json pairs them the same way). */
export const REKOR_PAIRS: Readonly<Record<string, string>> = { [ROOT_REDHAT]: 'redhat-rekor' };

/** Red Hat's scopes require a valid signature by release key 3, logged in Red Hat's Rekor. */
export const DEFAULT_POLICIES: readonly Policy[] = [
  { name: 'redhat', scopes: REDHAT_RELEASE_KEY_3.scopes, roots: [ROOT_REDHAT], require: 'signature', transparencyLog: true, origin: 'default' },
];

/** An image as policies see it: its repository, and the tag and digest it was named by. */
export interface PolicySubject {
  repository: string;
  tag?: string;
  digest?: string;
}

/** A scope split into repository part and, for an individual-image scope, its tag or digest. */
export function splitScope(scope: string): { repository: string; tag?: string; digest?: string } {
  const at = scope.indexOf('@');
  const digest = at >= 0 ? scope.slice(at + 1) : undefined;
  const rest = at >= 0 ? scope.slice(0, at) : scope;
  // a tag is after the last '/', so a host's port is not mistaken for one
  const m = /^(.*\/[^/:]*):([^/]*)$/.exec(rest);
  return { repository: m ? m[1]! : rest, ...(m ? { tag: m[2]! } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/**
 * How specifically `scope` covers an image, or -1 when it does not. As ClusterImagePolicy
 * and containers-policy.json scopes: an individual image (`repo:tag` or `repo@digest`)
 * covers only that image and wins; otherwise the exact repository, a namespace prefix at a
 * `/` boundary or a host, the longest match first; `*.domain` for hosts under that domain
 * ranks below any host. Given a bare repository, individual-image scopes never match.
 */
export function scopeSpecificity(scope: string, image: string | PolicySubject): number {
  const im: PolicySubject = typeof image === 'string' ? { repository: image } : image;
  // a wildcard names a domain: compare it with the host without its port
  const host = (im.repository.split('/')[0] ?? '').replace(/:[0-9]+$/, '').toLowerCase();
  if (scope.startsWith('*.')) return host.endsWith(scope.slice(1).toLowerCase()) ? 1 + scope.length / 1e4 : -1;
  const s = splitScope(scope);
  if (s.tag !== undefined || s.digest !== undefined) {
    if (s.repository !== im.repository) return -1;
    if (s.tag !== undefined && s.tag !== im.tag) return -1;
    if (s.digest !== undefined && s.digest !== im.digest) return -1;
    return 1_000_000;
  }
  if (im.repository === s.repository || im.repository.startsWith(`${s.repository}/`)) return 2 + s.repository.length;
  return -1;
}

/** The policy that governs an image: most specific scope; on a tie, file over archive over default. */
export function policyFor(policies: readonly Policy[], image: string | PolicySubject): Policy | undefined {
  const rank = { file: 3, archive: 2, default: 1 } as const;
  let best: { p: Policy; s: number } | undefined;
  for (const p of policies) {
    const s = Math.max(...p.scopes.map((sc) => scopeSpecificity(sc, image)));
    if (s < 0) continue;
    if (!best || s > best.s || (s === best.s && rank[p.origin] > rank[best.p.origin])) best = { p, s };
  }
  return best?.p;
}

/**
 * The policies in force: the defaults (when Red Hat's key travelled), then the
 * archive's own (from the image set), or those of a `--policy` file instead of the
 * archive's when one is given.
 */
export function effectivePolicies(o: { rootNames: readonly string[]; fromArchive: readonly PolicyConfig[] | unknown; fromFile?: readonly Policy[] }): Policy[] {
  const out: Policy[] = [];
  if (o.rootNames.includes(ROOT_REDHAT)) out.push(...DEFAULT_POLICIES);
  if (o.fromFile) out.push(...o.fromFile);
  else out.push(...archivePolicies(o.fromArchive));
  return out;
}

/** Policies as the inventory records them (`imageSet.policies`), narrowed. */
export function archivePolicies(v: unknown): Policy[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((x, i): Policy[] => {
    const o = x as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || !Array.isArray(o.scopes)) return [];
    return [
      {
        name: `policy-${i + 1}`,
        scopes: o.scopes.filter((s): s is string => typeof s === 'string'),
        roots: Array.isArray(o.roots) ? o.roots.filter((s): s is string => typeof s === 'string') : [],
        require: o.require === 'none' ? 'none' : 'signature',
        transparencyLog: o.transparencyLog !== false,
        ...narrowIdentity(o.identity),
        origin: 'archive',
      },
    ];
  });
}

/**
 * A `--policy FILE` for the disconnected side: YAML with `policies:`, the same shape
 * as in the image set; roots must name trust roots the archive carries.
 */
export function parsePolicyFile(text: string, file: string, carried: readonly string[]): Policy[] {
  const top = parseYaml(text, file);
  const m = top.map(['policies'], 'a mapping with "policies"');
  const c = m.get('policies');
  if (c === undefined || !c.present) throw new AirlockError('CONFIG', `${file}: has no "policies:" list`);
  const builtins = new Set(['redhat', 'sigstore-public-good']);
  const trust: TrustConfig = {
    redhat: carried.includes('redhat'),
    rekorKeyUrl: '',
    keys: carried.filter((n) => !builtins.has(n)).map((name) => ({ name, path: '', source: {} })),
    trustedRoots: [],
    sigstorePublicGood: carried.includes('sigstore-public-good'),
  };
  return parsePolicies(c, trust).map((p, i) => ({
    name: `file-${i + 1}`,
    scopes: p.scopes,
    roots: p.roots,
    require: p.require,
    transparencyLog: p.transparencyLog,
    ...(p.identity ? { identity: p.identity } : {}),
    origin: 'file',
  }));
}

function narrowIdentity(v: unknown): { identity?: PolicyIdentity } {
  const o = v as Record<string, unknown> | null | undefined;
  if (typeof o !== 'object' || o === null || typeof o.issuer !== 'string') return {};
  return {
    identity: {
      issuer: o.issuer,
      ...(typeof o.subject === 'string' ? { subject: o.subject } : {}),
      ...(typeof o.subjectRegExp === 'string' ? { subjectRegExp: o.subjectRegExp } : {}),
    },
  };
}
