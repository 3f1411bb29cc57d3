import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A small token server for Distribution's `auth: token` mode (the Docker token
 * spec): checks basic credentials, and signs an ES256 JWT (x5c header, raw r||s
 * signature) granting exactly the scopes asked for to known users. Anonymous
 * callers get a token with no access, as public token services do.
 */
export interface TokenServer {
  /** `http://127.0.0.1:PORT/token`, the realm for the registry config */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate bundle for the registry's `rootcertbundle` */
  certFile: string;
  /** every token request seen: who asked for which scopes (never the password) */
  requests: { user: string | undefined; scopes: string[] }[];
  /** every token handed out, so tests can check that none leaks into output */
  issued: string[];
  stop(): Promise<void>;
}

export interface TokenServerOptions {
  /** directory for the key and certificate (the caller removes it) */
  dir: string;
  users: Record<string, string>;
  service?: string;
  issuer?: string;
  /** seconds a token lives (default 300) */
  expiresIn?: number;
  /** refresh (identity) tokens accepted by the POST grant, mapped to the user they stand for */
  refreshTokens?: Record<string, string>;
  /** restrict grants; default: every requested action on every repository for known users */
  allow?: (user: string, type: string, name: string, action: string) => boolean;
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const keyFile = join(options.dir, 'token-key.pem');
  const certFile = join(options.dir, 'token-cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=airlock-test-token',
  ]);
  const key = createPrivateKey(await readFile(keyFile, 'utf8'));
  const certPem = await readFile(certFile, 'utf8');
  const x5c = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const service = options.service ?? 'airlock-test-registry';
  const issuer = options.issuer ?? 'airlock-test-token-issuer';
  const expiresIn = options.expiresIn ?? 300;
  const requests: TokenServer['requests'] = [];
  const issued: string[] = [];

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'POST') {
      // OAuth2 refresh-token grant (distribution docs/spec/auth/oauth.md): the form carries scope and token.
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const who = form.get('grant_type') === 'refresh_token' ? options.refreshTokens?.[form.get('refresh_token') ?? ''] : undefined;
        if (who === undefined) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_grant"}');
          return;
        }
        issue(res, who, (form.get('scope') ?? '').split(' ').filter((x) => x !== ''));
      });
      return;
    }
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Basic\s+(.+)$/i.exec(auth);
      const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
      const i = decoded.indexOf(':');
      const name = decoded.slice(0, i);
      if (i <= 0 || options.users[name] === undefined || options.users[name] !== decoded.slice(i + 1)) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}');
        return;
      }
      user = name;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    issue(res, user, scopes);
  });

  const issue = (res: ServerResponse, user: string | undefined, scopes: string[]): void => {
    requests.push({ user, scopes });
    const access: { type: string; name: string; actions: string[] }[] = [];
    if (user !== undefined) {
      for (const s of scopes) {
        // scope = type:name:actions, where name may itself hold a colon (host:port)
        const first = s.indexOf(':');
        const last = s.lastIndexOf(':');
        if (first < 0 || last === first) continue;
        const type = s.slice(0, first);
        const name = s.slice(first + 1, last);
        const actions = s
          .slice(last + 1)
          .split(',')
          .filter((a) => a !== '' && (options.allow ? options.allow(user!, type, name, a) : true));
        if (actions.length > 0) access.push({ type, name, actions });
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const token = jwt(key, x5c, {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    });
    issued.push(token);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    requests,
    issued,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

function jwt(key: KeyObject, x5c: string, claims: Record<string, unknown>): string {
  const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c: [x5c] }));
  const body = b64url(JSON.stringify(claims));
  // JWS ES256 (RFC 7518 §3.4) wants the raw r||s form, not DER.
  const sig = sign('sha256', Buffer.from(`${head}.${body}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${head}.${body}.${b64url(sig)}`;
}
