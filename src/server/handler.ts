import type * as http from 'node:http';
import { type Access, OPEN_ACCESS } from './auth.js';
import type { ServerBackend } from './backend.js';
import { guardBody, hasBody } from './body-guard.js';
import { DistributionError } from './errors.js';
import { blobRoute, startUploadRoute, uploadRoute } from './handle-blobs.js';
import { type HandlerOptions, notAllowed, type RequestContext, requireAccess } from './handle-context.js';
import { catalogRoute, referrersRoute, tagsRoute } from './handle-discovery.js';
import { manifestRoute } from './handle-manifests.js';
import { resolveLimits } from './limits.js';
import { notFound, sendError, sendJson } from './responses.js';
import { route } from './router.js';

export type { HandlerOptions } from './handle-context.js';

const API_VERSION_HEADER = 'Docker-Distribution-API-Version';

/**
 * The HTTP layer of `airlock serve`: distribution-spec v1.1 over any ServerBackend.
 * It knows nothing of the disk; the back end knows nothing of HTTP. Every request is
 * authenticated and authorised before any of its body is read.
 */
export function createHandler(
  backend: ServerBackend,
  given: Omit<HandlerOptions, 'access' | 'limits'> & Partial<Pick<HandlerOptions, 'access' | 'limits'>>,
): http.RequestListener {
  const opts: HandlerOptions = { ...given, access: given.access ?? OPEN_ACCESS, limits: given.limits ?? resolveLimits() };
  const challenge = `Basic realm="${opts.access.realm}", charset="UTF-8"`;
  return (req, res) => {
    const started = process.hrtime.bigint();
    const remote = req.socket.remoteAddress ?? '-';
    let logged = false;
    let cut = false;
    const logLine = (outcome: string): void => {
      if (logged || !opts.log) return;
      logged = true;
      const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
      opts.log(`${remote} ${req.method ?? '-'} ${req.url ?? '-'} ${outcome} ${ms}ms`);
    };
    res.on('close', () => {
      if (res.writableFinished) logLine(String(res.statusCode));
      else if (cut) logLine('- (body too slow, connection closed)');
      else logLine(res.headersSent ? `${res.statusCode} (cut short)` : '- (client went away)');
    });
    // a client that drops the connection mid-body may never see a response at all
    req.on('error', () => logLine(cut ? '- (body too slow, connection closed)' : '- (client went away)'));
    if (hasBody(req)) guardBody(req, opts.limits.bodyTimeoutMs, opts.limits.minBodyRate, () => (cut = true));
    const url = new URL(req.url ?? '/', 'http://registry.invalid');
    const x = { req, res, url, method: req.method ?? 'GET' };
    res.setHeader(API_VERSION_HEADER, 'registry/2.0');
    handle(backend, opts, x).catch((e: unknown) => sendError(x, e, opts.log, challenge));
  };
}

async function handle(backend: ServerBackend, opts: HandlerOptions, x: { req: http.IncomingMessage; res: http.ServerResponse; url: URL; method: string }): Promise<void> {
  // Who asks, before anything else (and before any body is read): a 401 for a missing or
  // wrong login is the same for an unknown user and a wrong password.
  const principal = await opts.access.authenticate(x.req.headers.authorization);
  if (!principal) throw new DistributionError('UNAUTHORIZED', 'authentication required: log in with a user of this registry');
  const ctx: RequestContext = { ...x, backend, opts, principal };
  const r = route(x.url.pathname);
  const need: Access = x.method === 'GET' || x.method === 'HEAD' ? 'pull' : 'push';
  switch (r.kind) {
    case 'none':
      return notFound(ctx);
    case 'bad-name':
      throw new DistributionError('NAME_INVALID', 'invalid repository name; use lower-case path components as in the distribution-spec <name> grammar');
    case 'base':
      if (x.method !== 'GET' && x.method !== 'HEAD') return notAllowed(ctx);
      return sendJson(ctx, 200, {});
    case 'catalog':
      return catalogRoute(ctx);
    case 'tags':
      requireAccess(ctx, r.name, 'pull');
      return tagsRoute(ctx, r.name);
    case 'manifest':
      requireAccess(ctx, r.name, need);
      return manifestRoute(ctx, r.name, r.reference);
    case 'blob':
      requireAccess(ctx, r.name, need);
      return blobRoute(ctx, r.name, r.digest);
    case 'uploads':
      requireAccess(ctx, r.name, 'push');
      return startUploadRoute(ctx, r.name);
    case 'upload':
      // an upload's status (GET) is part of pushing
      requireAccess(ctx, r.name, 'push');
      return uploadRoute(ctx, r.name, r.id);
    case 'referrers':
      requireAccess(ctx, r.name, 'pull');
      return referrersRoute(ctx, r.name, r.digest);
  }
}
