import type { Readable } from 'node:stream';
import { AirlockError, type ErrorCode, type Side } from '../errors.js';
import { dump, header, HttpTransport, readBody, redact, type HttpMethod, type HttpResponse } from '../http/transport.js';
import { registryEndpointHost } from '../oci/reference.js';
import { parseChallenges, type CredentialStore } from './auth.js';

/**
 * What every registry request shares: the transport, the scheme per registry,
 * and the auth state (challenge learnt per registry, bearer tokens cached per
 * scope set until they expire). Distribution-spec does not define auth; this
 * follows the Docker token specification (docs/spec/auth/token.md in distribution).
 */
export interface SessionOptions {
  http: HttpTransport;
  credentials: CredentialStore;
  isPlainHttp: (registry: string) => boolean;
  side?: Side;
}

export interface SendRequest {
  method: HttpMethod;
  /** absolute URL, or a path under the registry's base URL */
  url: URL | string;
  headers?: Record<string, string>;
  body?: Uint8Array | Readable;
  signal?: AbortSignal | undefined;
  followRedirects?: boolean;
  retry?: boolean;
}

type AuthState = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service: string | undefined } | { scheme: 'none' };

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** `repository:<name>:<actions>` (token spec, "Requesting a Token"). */
export function repositoryScope(name: string, actions: 'pull' | 'pull,push' | 'delete' | '*'): string {
  return `repository:${name}:${actions}`;
}

export const CATALOG_SCOPE = 'registry:catalog:*';

export class RegistrySession {
  readonly http: HttpTransport;
  readonly #credentials: CredentialStore;
  readonly #isPlain: (registry: string) => boolean;
  readonly side: Side | undefined;
  readonly #auth = new Map<string, AuthState>();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pendingTokens = new Map<string, Promise<CachedToken>>();

  constructor(options: SessionOptions) {
    this.http = options.http;
    this.#credentials = options.credentials;
    this.#isPlain = options.isPlainHttp;
    this.side = options.side;
  }

  isPlainHttp(registry: string): boolean {
    return this.#isPlain(registry);
  }

  baseUrl(registry: string): URL {
    const scheme = this.#isPlain(registry) ? 'http' : 'https';
    return new URL(`${scheme}://${registryEndpointHost(registry)}/v2/`);
  }

  /**
   * Send one request to `registry` with the authorization the scopes need. On a
   * 401 the challenge is learnt, a token fetched, and the request sent once more
   * (only when its body can be re-sent).
   */
  async send(registry: string, scopes: readonly string[], req: SendRequest): Promise<HttpResponse> {
    const url = typeof req.url === 'string' ? new URL(req.url, this.baseUrl(registry)) : req.url;
    // Credentials are for the registry's own origin; an upload Location on
    // another origin gets none (the same rule the transport applies to redirects).
    const sameOrigin = url.origin === this.baseUrl(registry).origin;
    for (let attempt = 0; ; attempt++) {
      const authorization = sameOrigin ? await this.#authorization(registry, scopes, req.signal) : undefined;
      const headers = { ...(req.headers ?? {}), ...(authorization ? { authorization } : {}) };
      const res = await this.http.request({
        method: req.method,
        url,
        headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
        ...(req.followRedirects !== undefined ? { followRedirects: req.followRedirects } : {}),
        ...(req.retry !== undefined ? { retry: req.retry } : {}),
      });
      if (res.status !== 401) return res;
      const replayable = req.body === undefined || req.body instanceof Uint8Array;
      const learnt = this.#learn(registry, header(res, 'www-authenticate'), scopes, authorization !== undefined);
      if (attempt > 0 || !learnt || !replayable) return res;
      await dump(res);
    }
  }

  /** Learn from a 401; returns true when a second attempt could succeed. */
  #learn(registry: string, wwwAuthenticate: string | undefined, scopes: readonly string[], hadAuth: boolean): boolean {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    const before = this.#auth.get(registry);
    if (bearer?.params.realm) {
      this.#auth.set(registry, { scheme: 'bearer', realm: bearer.params.realm, service: bearer.params.service });
      const key = tokenKey(registry, scopes);
      const had = this.#tokens.has(key);
      this.#tokens.delete(key);
      // A token we had may have expired or been revoked: one fresh attempt.
      return !hadAuth || had || before?.scheme !== 'bearer';
    }
    if (basic) {
      this.#auth.set(registry, { scheme: 'basic' });
      return !hadAuth && this.#basic(registry) !== undefined;
    }
    return false;
  }

  async #authorization(registry: string, scopes: readonly string[], signal: AbortSignal | undefined): Promise<string | undefined> {
    const state = this.#auth.get(registry);
    if (!state || state.scheme === 'none') return undefined;
    if (state.scheme === 'basic') return this.#basic(registry);
    const key = tokenKey(registry, scopes);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    let pending = this.#pendingTokens.get(key);
    if (!pending) {
      pending = this.#fetchToken(registry, state.realm, state.service, scopes, signal).finally(() => this.#pendingTokens.delete(key));
      this.#pendingTokens.set(key, pending);
    }
    const t = await pending;
    this.#tokens.set(key, t);
    return `Bearer ${t.token}`;
  }

  #basic(registry: string): string | undefined {
    const c = this.#credentials.get(registry);
    if (!c || !('username' in c)) return undefined;
    // Basic credentials go only over TLS, or to a registry the user marked plain-HTTP.
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  async #fetchToken(
    registry: string,
    realm: string,
    service: string | undefined,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw this.error('REGISTRY', `${registry}: the auth challenge names an invalid token realm`);
    }
    const cred = this.#credentials.get(registry);
    const secure = realmUrl.protocol === 'https:' || this.#isPlain(realmUrl.host) || (this.#isPlain(registry) && realmUrl.hostname === hostnameOf(registry));
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') {
      throw this.error('REGISTRY', `${registry}: token realm ${realmUrl.protocol} is not http(s)`);
    }
    if (realmUrl.protocol === 'http:' && !secure) {
      throw this.error('REGISTRY', `${registry}: token realm ${redact(realmUrl)} is plain http; mark it with --plain-http if that is intended`);
    }
    let res: HttpResponse;
    if (cred && 'identityToken' in cred) {
      // OAuth2 refresh-token grant (token spec, "oauth.md").
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'airlock' });
      if (service) form.set('service', service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      res = await this.http.request({
        method: 'POST',
        url: realmUrl,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        ...(signal ? { signal } : {}),
      });
    } else {
      const url = new URL(realmUrl);
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (cred && 'username' in cred) {
        headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      }
      res = await this.http.request({ method: 'GET', url, headers, ...(signal ? { signal } : {}) });
    }
    if (res.status === 401 || res.status === 403) {
      await dump(res);
      throw this.error(
        'UNAUTHORIZED',
        `${registry}: the token service ${redact(realmUrl)} refused ${cred ? 'the credentials' : 'anonymous access'} (HTTP ${res.status}); log in or pass --authfile`,
      );
    }
    if (res.status !== 200) {
      await dump(res);
      throw this.error('REGISTRY', `${registry}: the token service ${redact(realmUrl)} answered HTTP ${res.status}`);
    }
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse((await readBody(res, 1 << 20)).toString('utf8')) as typeof doc;
    } catch {
      throw this.error('REGISTRY', `${registry}: the token service ${redact(realmUrl)} answered something that is not JSON`);
    }
    const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token;
    if (typeof token !== 'string' || token === '') {
      throw this.error('REGISTRY', `${registry}: the token service ${redact(realmUrl)} answered without a token`);
    }
    // Token spec: expires_in defaults to 60 s. Renew a little early so a token never expires in flight.
    const lifetime = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    return { token, expiresAt: Date.now() + Math.max(1, lifetime - Math.min(30, lifetime / 4)) * 1000 };
  }

  /** Turn a failed response into an AirlockError, including the registry's error document when present. */
  async responseError(
    res: HttpResponse,
    context: { registry: string; repository?: string; what: string },
  ): Promise<AirlockError> {
    let detail = '';
    let errors: { code?: string; message?: string }[] = [];
    if (res.body && !res.body.destroyed) {
      try {
        const body = await readBody(res, 64 * 1024);
        const text = body.toString('utf8');
        try {
          // distribution-spec "Error Codes": {"errors":[{"code","message","detail"}]}
          const doc = JSON.parse(text) as { errors?: unknown };
          if (Array.isArray(doc.errors)) errors = doc.errors as typeof errors;
        } catch {
          if (text.trim() !== '' && text.length < 200 && !/<html/i.test(text)) detail = text.trim();
        }
      } catch {
        // no body to show
      }
    }
    if (errors.length > 0) {
      detail = errors
        .slice(0, 3)
        .map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': '))
        .join('; ');
    }
    const where = context.repository ? `${context.registry}/${context.repository}` : context.registry;
    const status = `HTTP ${res.status}${detail ? ` ${detail}` : ''}`;
    let code: ErrorCode;
    let hint: string;
    if (res.status === 404) {
      code = 'NOT_FOUND';
      hint = 'check the name, tag or digest';
    } else if (res.status === 401 || res.status === 403) {
      code = 'UNAUTHORIZED';
      hint = 'log in or pass --authfile, and check that the account may access this repository';
    } else {
      code = 'REGISTRY';
      hint = res.status >= 500 ? 'the registry failed; try again later' : 'the registry refused the request';
      // Go's TLS servers answer a plain-HTTP request with exactly this 400 text.
      if (res.status === 400 && /HTTP request to an HTTPS server/i.test(detail)) hint = 'the registry speaks TLS: leave out --plain-http (and plainHTTP in the image set)';
    }
    return this.error(code, `${context.what} in ${where}: ${status}; ${hint}`, {
      status: res.status,
      ...(errors[0]?.code ? { registryError: errors[0].code } : {}),
      // all the codes: a registry may list the telling one second (Distribution: DIGEST_INVALID; MANIFEST_BLOB_UNKNOWN)
      ...(errors.length > 0 ? { registryErrors: errors.map((e) => e.code).filter((c): c is string => typeof c === 'string') } : {}),
    });
  }

  error(code: ErrorCode, message: string, detail?: Record<string, unknown>): AirlockError {
    return new AirlockError(code, message, { ...(this.side ? { side: this.side } : {}), ...(detail ? { detail } : {}) });
  }
}

function tokenKey(registry: string, scopes: readonly string[]): string {
  return `${registry} ${[...scopes].sort().join(' ')}`;
}

function hostnameOf(registry: string): string {
  return new URL(`http://${registry}`).hostname;
}
