import type * as http from 'node:http';
import type { Readable } from 'node:stream';
import { isAirlockError } from '../errors.js';
import { type Digest, isDigest } from '../oci/digest.js';
import { DistributionError } from './errors.js';

/** What every handler has: the request, its response, and the parsed URL. */
export interface Exchange {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly url: URL;
  readonly method: string;
}

export function sendJson(x: Exchange, status: number, value: unknown): void {
  sendBytes(x, status, 'application/json', Buffer.from(JSON.stringify(value)));
}

export function sendBytes({ req, res }: Exchange, status: number, contentType: string, bytes: Buffer): void {
  req.resume();
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', String(bytes.byteLength));
  res.writeHead(status);
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

/** An empty answer with a status (and the headers set before). */
export function sendEmpty({ res }: Exchange, status: number): void {
  res.setHeader('Content-Length', '0');
  res.writeHead(status).end();
}

/** Unknown routes answer like Distribution: plain text, no spec error body. */
export function notFound({ res }: Exchange): void {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.writeHead(404).end('404 page not found\n');
}

export function created(x: Exchange, name: string, digest: Digest): void {
  x.res.setHeader('Location', `/v2/${name}/blobs/${digest}`);
  x.res.setHeader('Docker-Content-Digest', digest);
  sendEmpty(x, 201);
}

export function parseDigestParam(s: string): Digest {
  if (!isDigest(s)) throw new DistributionError('DIGEST_INVALID', `"${s.slice(0, 140)}" is not a sha256 or sha512 digest`, { detail: { digest: s.slice(0, 140) } });
  return s;
}

export function blobUnknown(name: string, digest: Digest): DistributionError {
  return new DistributionError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`, { detail: { digest } });
}

/**
 * Paginated listing (distribution-spec "Listing Tags" and "_catalog"): entries after
 * `last` in lexical order, at most `n`, and a `Link: <...>; rel="next"` when more remain.
 */
export function sendPage(x: Exchange, base: string, all: string[], body: (items: string[]) => unknown): void {
  const last = x.url.searchParams.get('last');
  const nParam = x.url.searchParams.get('n');
  let items = last !== null ? all.filter((t) => t > last) : all;
  if (nParam !== null) {
    if (!/^\d+$/.test(nParam)) throw new DistributionError('UNSUPPORTED', `n=${nParam.slice(0, 20)} is not a number`, { status: 400 });
    const n = Number(nParam);
    if (items.length > n) {
      items = items.slice(0, n);
      const next = items[items.length - 1];
      if (next !== undefined) x.res.setHeader('Link', `<${base}?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`);
    }
  }
  sendJson(x, 200, body(items));
}

/** A manifest body, held in memory under its cap (the caller's limit). */
export async function readBody(req: Readable & { headers: http.IncomingHttpHeaders }, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    throw new DistributionError('MANIFEST_INVALID', `manifest of ${declared} bytes is over the ${limit}-byte limit`, { status: 413 });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of req) {
    const b = c as Buffer;
    total += b.length;
    if (total > limit) throw new DistributionError('MANIFEST_INVALID', `manifest is over the ${limit}-byte limit`, { status: 413 });
    chunks.push(b);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Answer a failure with the spec's error body. A failure that is not the client's is
 * logged and answered 500 without detail. `challenge` is the WWW-Authenticate value of
 * a 401 (RFC 7235: a 401 must carry one).
 */
export function sendError(x: Exchange, e: unknown, log: ((line: string) => void) | undefined, challenge: string): void {
  const { req, res } = x;
  let err: DistributionError;
  if (e instanceof DistributionError) err = e;
  else if (isAirlockError(e, 'DIGEST_MISMATCH')) err = new DistributionError('DIGEST_INVALID', e.message, { cause: e });
  else if (isAirlockError(e, 'SIZE_MISMATCH')) err = new DistributionError('SIZE_INVALID', e.message, { cause: e });
  else {
    // a client that went away mid-body is not a server failure worth a 500 line
    if (req.destroyed || res.destroyed) return;
    log?.(`error: ${req.method ?? '-'} ${req.url ?? '-'}: ${(e as Error)?.message ?? String(e)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    req.resume();
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Connection', 'close');
    res.writeHead(500).end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal error, see the server log' }] }));
    return;
  }
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  // An unread request body (rejected before we consumed it): close the connection
  // rather than read what may be gigabytes we do not want.
  if (!req.complete) {
    res.setHeader('Connection', 'close');
    req.resume();
  }
  if (err.status === 401) res.setHeader('WWW-Authenticate', challenge);
  if (err.status === 429) res.setHeader('Retry-After', '10');
  const body = Buffer.from(JSON.stringify(err.toJSON()));
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', String(body.byteLength));
  res.writeHead(err.status);
  res.end(req.method === 'HEAD' ? undefined : body);
}
