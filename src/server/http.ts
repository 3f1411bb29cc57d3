import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import { AirlockError } from '../errors.js';
import { type AccessControl, loadAccessControl } from './auth.js';
import type { ServerBackend } from './backend.js';
import { ArchiveBackend } from './archive-backend.js';
import { DirectoryBackend } from './dir-backend.js';
import { createHandler } from './handler.js';
import { resolveLimits, type ServerLimits } from './limits.js';

export { createHandler } from './handler.js';

export interface ServerOptions {
  /** storage directory for the directory back end (ignored when `backend` is given) */
  root?: string;
  /** serve an airlock archive read-only, straight from the tar (ignored when `backend` is given) */
  archive?: string;
  backend?: ServerBackend;
  /** host:port; port 0 picks a free port. Default 127.0.0.1:5000 */
  listen?: string;
  /** answer the OCI 1.1 referrers API (default true); false behaves like a pre-1.1 registry */
  referrersApi?: boolean;
  /** referrers per page before a `Link` to the next page (default 1000) */
  referrersPageSize?: number;
  /** PEM file paths */
  tls?: { cert: string; key: string };
  /** one line per request */
  log?: (line: string) => void;
  /** refuse every write with 405 UNSUPPORTED */
  readOnly?: boolean;
  /** on close, how long requests in flight may run before their connections are cut (default 5000 ms) */
  shutdownGraceMs?: number;
  /** htpasswd file (bcrypt) of the users who may pull and push */
  htpasswd?: string;
  /** htpasswd file of the users who may only pull */
  htpasswdReadOnly?: string;
  /** per-repository access rules (auth.ts) */
  access?: string;
  /** an access control already loaded (instead of the three files above) */
  auth?: AccessControl;
  /** listen on a non-loopback address without authentication (refused otherwise) */
  insecurePublic?: boolean;
  /** resource bounds; defaults in limits.ts */
  limits?: Partial<ServerLimits>;
  /** accept an index whose child manifests are absent (default true) */
  sparseIndex?: boolean;
}

export interface RunningServer {
  /** http(s)://HOST:PORT */
  readonly url: string;
  /** HOST:PORT, as a registry host in image references */
  readonly host: string;
  /** what an operator must hear on every start (an unauthenticated public listener, say) */
  readonly warnings: readonly string[];
  close(): Promise<void>;
}

/** Parse `host:port`, `[v6]:port` or `:port`. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new AirlockError('USAGE', `--listen "${listen}" is not HOST:PORT (for example 127.0.0.1:5000, or port 0 for any free port)`);
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]);
  return { host, port };
}

/** Does `host` reach only this machine (127.0.0.0/8, ::1)? A name counts by every address it has. */
export async function isLoopbackHost(host: string): Promise<boolean> {
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await lookup(host, { all: true })).map((a) => a.address);
    } catch {
      return false;
    }
  }
  return addresses.length > 0 && addresses.every((a) => /^127\./.test(a) || a === '::1' || /^::ffff:127\./i.test(a));
}

/** Start the registry in this process. Port 0 picks a free port; `url` and `host` say which. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const limits = resolveLimits(opts.limits);
  const access =
    opts.auth ??
    (await loadAccessControl({
      ...(opts.htpasswd !== undefined ? { htpasswd: opts.htpasswd } : {}),
      ...(opts.htpasswdReadOnly !== undefined ? { htpasswdReadOnly: opts.htpasswdReadOnly } : {}),
      ...(opts.access !== undefined ? { access: opts.access } : {}),
    }));
  const { host, port } = parseListen(opts.listen ?? '127.0.0.1:5000');
  const warnings: string[] = [];
  if (!(await isLoopbackHost(host))) {
    // Refuse before anything is opened: a registry on the network without authentication
    // lets anyone who reaches it push over, and delete, what the cluster runs.
    if (!access.enabled && !opts.insecurePublic) {
      throw new AirlockError(
        'USAGE',
        `refusing to listen on ${host}:${port} without authentication: anyone who can reach it could push and delete images; give --htpasswd FILE (with --tls-cert/--tls-key), listen on 127.0.0.1, or accept the risk with --insecure-public`,
      );
    }
    if (!access.enabled) warnings.push(`warning: ${host}:${port} is reachable from the network with no authentication (--insecure-public): anyone who reaches it can push, overwrite and delete images`);
    else if (!opts.tls) warnings.push(`warning: ${host}:${port} is reachable from the network over plain HTTP: basic-auth passwords cross it in clear text; serve TLS with --tls-cert/--tls-key`);
  }
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (opts.tls) {
    try {
      const [cert, key] = await Promise.all([readFile(opts.tls.cert), readFile(opts.tls.key)]);
      tls = { cert, key };
    } catch (e) {
      throw new AirlockError('IO', `cannot read the TLS certificate or key: ${(e as Error).message}`, { cause: e, side: 'local' });
    }
  }
  let backend = opts.backend;
  if (!backend) {
    if ((opts.root === undefined) === (opts.archive === undefined)) {
      throw new AirlockError('USAGE', 'serve needs either a storage directory (--root DIR) or an archive (--archive FILE), not both');
    }
    backend =
      opts.archive !== undefined
        ? await ArchiveBackend.open(opts.archive)
        : await DirectoryBackend.open(opts.root!, {
            readOnly: opts.readOnly ?? false,
            maxBlobBytes: limits.maxBlobBytes,
            maxUploads: limits.maxUploads,
            uploadMaxAgeMs: limits.uploadMaxAgeMs,
            uploadSweepIntervalMs: limits.uploadSweepIntervalMs,
            sparseIndex: opts.sparseIndex ?? true,
            onSweep: (n) => opts.log?.(`removed ${n} upload session(s) idle for longer than ${Math.round(limits.uploadMaxAgeMs / 1000)}s`),
          });
  }
  const handler = createHandler(backend, {
    referrersApi: opts.referrersApi ?? true,
    referrersPageSize: Math.max(1, opts.referrersPageSize ?? 1000),
    readOnly: opts.readOnly ?? false,
    log: opts.log,
    access,
    limits,
  });
  // Node checks header and keep-alive deadlines on this interval
  const serverOpts: http.ServerOptions = { connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(limits.idleTimeoutMs / 4))) };
  const server: http.Server = tls ? https.createServer({ ...serverOpts, cert: tls.cert, key: tls.key }, handler) : http.createServer(serverOpts, handler);
  // Large blobs stream for minutes: no deadline for a whole request (the body guard cuts
  // slow bodies instead), but request headers and idle keep-alive connections are bounded.
  server.requestTimeout = 0;
  server.headersTimeout = limits.idleTimeoutMs;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  const opened = backend;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new AirlockError('IO', `cannot listen on ${host}:${port}: ${e.code ?? e.message}; pick another --listen address`, { cause: e, side: 'local' })),
    );
    server.listen(port, host, () => resolve());
  }).catch(async (e: unknown) => {
    await opened.close?.();
    throw e;
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const hostPort = `${shownHost}:${addr.port}`;
  const scheme = tls ? 'https' : 'http';
  let closed: Promise<void> | undefined;
  return {
    url: `${scheme}://${hostPort}`,
    host: hostPort,
    warnings,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive connections go now; requests in flight get a grace period to
        // finish, then are cut (the client retries; an upload stays resumable on disk).
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), opts.shutdownGraceMs ?? 5000).unref();
      }).then(async () => {
        await opened.close?.();
      });
      return closed;
    },
  };
}
