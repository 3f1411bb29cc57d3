import type { Access, AccessControl, Principal } from './auth.js';
import { isWritableBackend, type ServerBackend, type WritableBackend } from './backend.js';
import { DistributionError } from './errors.js';
import type { ServerLimits } from './limits.js';
import type { Exchange } from './responses.js';

export interface HandlerOptions {
  referrersApi: boolean;
  referrersPageSize: number;
  readOnly: boolean;
  log: ((line: string) => void) | undefined;
  access: AccessControl;
  limits: ServerLimits;
}

/** One request as the endpoint handlers see it: the exchange, the back end, who asks. */
export interface RequestContext extends Exchange {
  readonly backend: ServerBackend;
  readonly opts: HandlerOptions;
  readonly principal: Principal;
}

/** The back end for a write; 405 UNSUPPORTED on a read-only registry. */
export function writable(ctx: RequestContext): WritableBackend {
  if (ctx.opts.readOnly || !isWritableBackend(ctx.backend)) throw new DistributionError('UNSUPPORTED', 'this registry is read-only');
  return ctx.backend;
}

export function notAllowed(ctx: RequestContext): never {
  throw new DistributionError('UNSUPPORTED', `${ctx.method} is not supported on ${ctx.url.pathname}`);
}

/** May the principal `access` the repository? */
export function may(ctx: RequestContext, repo: string, access: Access): boolean {
  return ctx.opts.access.allows(ctx.principal, repo, access);
}

/** 403 DENIED unless the principal may `access` the repository. */
export function requireAccess(ctx: RequestContext, repo: string, access: Access): void {
  if (may(ctx, repo, access)) return;
  const user = ctx.principal.user ?? 'anonymous';
  throw new DistributionError('DENIED', `${user} may not ${access} ${access === 'push' ? 'to' : 'from'} ${repo}`, { detail: { name: repo, action: access } });
}
