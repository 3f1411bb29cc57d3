import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fetch } from 'undici';
import type { TrustRootContent } from '../archive/build.js';
import type { TrustConfig } from '../config/trust-policy.js';
import { AirlockError, errorLine } from '../errors.js';
import { readShipped, REDHAT_RELEASE_KEY_3 } from './defaults.js';

export const TrustMediaType = {
  PublicKey: 'application/x-pem-file',
  TrustedRoot: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
} as const;

/** The trust-root names policies refer to. */
export const TrustRootName = {
  RedHat: 'redhat',
  RedHatRekor: 'redhat-rekor',
  SigstorePublicGood: 'sigstore-public-good',
} as const;

export interface CollectOptions {
  env: NodeJS.ProcessEnv;
  log?: { info(line: string): void; debug(line: string): void };
  signal?: AbortSignal;
  /** fetch Red Hat's release key from its URL instead of using the shipped copy */
  refreshRedHatKey?: boolean;
  /** where to refresh it from (default: Red Hat's published URL); for mirrors of it and for tests */
  redhatKeyUrl?: string;
  now?: Date;
}

/**
 * Gather the trust roots pack carries: Red Hat's release key (shipped), Red Hat's
 * Rekor key (fetched), the Sigstore public-good trusted root (from @sigstore/tuf's
 * embedded seed, offline), and the user's own keys and trusted roots. Any root that
 * is configured but cannot be obtained fails the pack, naming it.
 */
export async function carriedTrustRoots(trust: TrustConfig, o: CollectOptions): Promise<TrustRootContent[]> {
  const now = (o.now ?? new Date()).toISOString();
  const roots: TrustRootContent[] = [];
  if (trust.redhat) {
    const keyUrl = o.redhatKeyUrl ?? REDHAT_RELEASE_KEY_3.url;
    const bytes = o.refreshRedHatKey ? await fetchText(keyUrl, 'Red Hat release key 3', o) : await readShipped(REDHAT_RELEASE_KEY_3);
    checkPublicKey(bytes, `Red Hat release key 3 (${o.refreshRedHatKey ? keyUrl : 'shipped copy'})`);
    roots.push({
      name: TrustRootName.RedHat,
      kind: 'public-key',
      purpose: REDHAT_RELEASE_KEY_3.purpose,
      source: o.refreshRedHatKey ? keyUrl : REDHAT_RELEASE_KEY_3.url,
      fetchedAt: o.refreshRedHatKey ? now : 'shipped with airlock',
      mediaType: TrustMediaType.PublicKey,
      bytes,
    });
    const rekor = await fetchText(trust.rekorKeyUrl, "Red Hat's Rekor public key", o);
    checkPublicKey(rekor, `Red Hat's Rekor public key from ${trust.rekorKeyUrl}`);
    roots.push({
      name: TrustRootName.RedHatRekor,
      kind: 'rekor-key',
      purpose: "Red Hat's Rekor transparency-log key: verifies the signed entry timestamps on Red Hat's signatures",
      source: trust.rekorKeyUrl,
      fetchedAt: now,
      mediaType: TrustMediaType.PublicKey,
      bytes: rekor,
    });
  }
  if (trust.sigstorePublicGood) {
    roots.push({
      name: TrustRootName.SigstorePublicGood,
      kind: 'sigstore-trusted-root',
      purpose: 'Sigstore public-good trusted root (Fulcio CAs, Rekor and CT log keys, TSA)',
      source: 'https://tuf-repo-cdn.sigstore.dev/targets/trusted_root.json (embedded seed of @sigstore/tuf)',
      fetchedAt: 'embedded seed of @sigstore/tuf',
      mediaType: TrustMediaType.TrustedRoot,
      bytes: publicGoodTrustedRoot(),
    });
  }
  for (const k of trust.keys) {
    const bytes = await readLocal(k.path, `key ${k.name}`);
    checkPublicKey(bytes, `key ${k.name} (${k.path})`);
    roots.push({ name: k.name, kind: 'public-key', purpose: 'user-supplied signing key', source: k.path, fetchedAt: now, mediaType: TrustMediaType.PublicKey, bytes });
  }
  for (const t of trust.trustedRoots) {
    const bytes = await readLocal(t.path, `trusted root ${t.name}`);
    try {
      const v = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
      if (typeof v !== 'object' || v === null) throw new Error('not a JSON object');
    } catch (e) {
      throw new AirlockError('TRUST', `trusted root ${t.name} (${t.path}): not a Sigstore trusted_root.json (${errorLine(e)})`);
    }
    roots.push({ name: t.name, kind: 'sigstore-trusted-root', purpose: 'user-supplied Sigstore trusted root', source: t.path, fetchedAt: now, mediaType: TrustMediaType.TrustedRoot, bytes });
  }
  return roots;
}

function checkPublicKey(bytes: Buffer, what: string): void {
  try {
    createPublicKey(bytes);
  } catch (e) {
    throw new AirlockError('TRUST', `${what}: not a PEM public key (${errorLine(e)})`);
  }
}

async function readLocal(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new AirlockError('TRUST', `${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? errorLine(e)})`);
  }
}

async function fetchText(url: string, what: string, o: CollectOptions): Promise<Buffer> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AirlockError('TRUST', `${what}: "${url}" is not a URL`);
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopback(u.hostname))) {
    throw new AirlockError('TRUST', `${what}: ${url} is not https (plain http is accepted only on loopback)`);
  }
  o.log?.debug(`fetching ${what} from ${url}`);
  try {
    // A public key, fetched without credentials: following redirects is harmless here.
    const res = await fetch(u, { redirect: 'follow', signal: o.signal ?? AbortSignal.timeout(30_000) });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > 1024 * 1024) throw new Error('larger than 1 MiB');
    return body;
  } catch (e) {
    throw new AirlockError('TRUST', `${what}: cannot fetch ${url} (${errorLine(e)}); set trust.rekorKeyUrl or trust.redhat: false in the image set`, { cause: e });
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

/** The public-good trusted_root.json from @sigstore/tuf's embedded seed: no network. */
export function publicGoodTrustedRoot(): Buffer {
  const require = createRequire(import.meta.url);
  const seedsPath = require.resolve('@sigstore/tuf/seeds.json');
  const seeds = require(seedsPath) as Record<string, { targets: Record<string, string> }>;
  const b64 = seeds['https://tuf-repo-cdn.sigstore.dev']?.targets['trusted_root.json'];
  if (!b64) throw new AirlockError('TRUST', '@sigstore/tuf seeds.json has no trusted_root.json for the public-good instance');
  return Buffer.from(b64, 'base64');
}
