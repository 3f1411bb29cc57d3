import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirlockError, isAirlockError } from '../errors.js';
import { type Digest, isDigest } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, MediaType } from '../oci/media-types.js';
import { filterByArtifactType, referrersIndex } from '../oci/referrers.js';
import { isWritableBackend, NAME_PATTERN, type ServerBackend, type WritableBackend } from './backend.js';
import { ArchiveBackend } from './archive-backend.js';
import { DirectoryBackend } from './dir-backend.js';
import { DistributionError } from './errors.js';

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
}

export interface RunningServer {
  /** http(s)://HOST:PORT */
  readonly url: string;
  /** HOST:PORT, as a registry host in image references */
  readonly host: string;
  close(): Promise<void>;
}

interface HandlerOptions {
  referrersApi: boolean;
  referrersPageSize: number;
  readOnly: boolean;
  log: ((line: string) => void) | undefined;
}

const API_VERSION_HEADER = 'Docker-Distribution-API-Version';

type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'bad-name' }
  | { kind: 'none' };

const NAME_RE = new RegExp(`^${NAME_PATTERN}$`);

const ROUTES: Array<[RegExp, (m: RegExpExecArray) => Route]> = [
  [/^\/v2\/?$/, () => ({ kind: 'base' })],
  [/^\/v2\/_catalog$/, () => ({ kind: 'catalog' })],
  [new RegExp(`^/v2/(${NAME_PATTERN})/tags/list$`), (m) => ({ kind: 'tags', name: m[1]! })],
  [new RegExp(`^/v2/(${NAME_PATTERN})/manifests/([^/]+)$`), (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [new RegExp(`^/v2/(${NAME_PATTERN})/blobs/uploads/?$`), (m) => ({ kind: 'uploads', name: m[1]! })],
  [new RegExp(`^/v2/(${NAME_PATTERN})/blobs/uploads/([^/]+)$`), (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [new RegExp(`^/v2/(${NAME_PATTERN})/blobs/([^/]+)$`), (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [new RegExp(`^/v2/(${NAME_PATTERN})/referrers/([^/]+)$`), (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
  [/^\/v2\/.+\/(?:tags\/list|manifests\/[^/]+|blobs\/.+|referrers\/[^/]+)$/, () => ({ kind: 'bad-name' })],
];

function route(pathname: string): Route {
  for (const [re, make] of ROUTES) {
    const m = re.exec(pathname);
    if (m) {
      // a client may percent-encode the ':' of a digest; the decoded value is validated later
      for (let i = 2; i < m.length; i++) m[i] = safeDecode(m[i]!);
      return make(m);
    }
  }
  return { kind: 'none' };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The HTTP layer of `airlock serve`: distribution-spec v1.1 over any ServerBackend.
 * It knows nothing of the disk; the back end knows nothing of HTTP.
 */
export function createHandler(backend: ServerBackend, opts: HandlerOptions): http.RequestListener {
  return (req, res) => {
    const started = process.hrtime.bigint();
    const remote = req.socket.remoteAddress ?? '-';
    let logged = false;
    const logLine = (outcome: string): void => {
      if (logged || !opts.log) return;
      logged = true;
      const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
      opts.log(`${remote} ${req.method ?? '-'} ${req.url ?? '-'} ${outcome} ${ms}ms`);
    };
    res.on('close', () => {
      if (res.writableFinished) logLine(String(res.statusCode));
      else logLine(res.headersSent ? `${res.statusCode} (cut short)` : '- (client went away)');
    });
    // a client that drops the connection mid-body may never see a response at all
    req.on('error', () => logLine('- (client went away)'));
    handle(backend, opts, req, res).catch((e: unknown) => sendError(req, res, e, opts));
  };
}

async function handle(backend: ServerBackend, opts: HandlerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://registry.invalid');
  const method = req.method ?? 'GET';
  res.setHeader(API_VERSION_HEADER, 'registry/2.0');
  const r = route(url.pathname);
  const writable = (): WritableBackend => {
    if (opts.readOnly || !isWritableBackend(backend)) throw new DistributionError('UNSUPPORTED', 'this registry is read-only');
    return backend;
  };
  const notAllowed = (): never => {
    throw new DistributionError('UNSUPPORTED', `${method} is not supported on ${url.pathname}`);
  };
  switch (r.kind) {
    case 'none':
      return notFound(res);
    case 'bad-name':
      throw new DistributionError('NAME_INVALID', 'invalid repository name; use lower-case path components as in the distribution-spec <name> grammar');
    case 'base':
      if (method !== 'GET' && method !== 'HEAD') return notAllowed();
      return sendJson(req, res, 200, {});
    case 'catalog': {
      if (method !== 'GET') return notAllowed();
      const all = await backend.repositories();
      return sendPage(req, res, url, '/v2/_catalog', all, (items) => ({ repositories: items }));
    }
    case 'tags': {
      if (method !== 'GET') return notAllowed();
      const tags = await backend.tags(r.name);
      if (tags === undefined) throw new DistributionError('NAME_UNKNOWN', `repository ${r.name} is not known to this registry`, { detail: { name: r.name } });
      return sendPage(req, res, url, `/v2/${r.name}/tags/list`, tags, (items) => ({ name: r.name, tags: items }));
    }
    case 'manifest':
      return manifestRoute(backend, opts, req, res, r.name, r.reference, writable, notAllowed);
    case 'blob': {
      const digest = parseDigestParam(r.digest);
      if (method === 'GET' || method === 'HEAD') return getBlob(backend, req, res, r.name, digest);
      if (method === 'DELETE') {
        if (!(await writable().deleteBlob(r.name, digest))) throw blobUnknown(r.name, digest);
        res.setHeader('Content-Length', '0');
        res.writeHead(202).end();
        return;
      }
      return notAllowed();
    }
    case 'uploads': {
      if (method !== 'POST') return notAllowed();
      return startUpload(writable(), req, res, r.name, url);
    }
    case 'upload':
      return uploadRoute(writable, req, res, r.name, r.id, url, notAllowed);
    case 'referrers': {
      // With the API off, answer like a pre-1.1 registry (Distribution 2.8): a plain 404,
      // so clients fall back to the referrers tag schema.
      if (!opts.referrersApi) return notFound(res);
      if (method !== 'GET' && method !== 'HEAD') return notAllowed();
      const digest = parseDigestParam(r.digest);
      const all = await backend.referrers(r.name, digest);
      const artifactType = url.searchParams.get('artifactType') ?? undefined;
      let list = filterByArtifactType(all, artifactType);
      // distribution-spec "Listing Referrers": report the filter that was applied
      if (artifactType !== undefined) res.setHeader('OCI-Filters-Applied', 'artifactType');
      // A long listing is paged with a Link header (the spec leaves the query to the
      // server); `last` is the digest of the previous page's last entry.
      const last = url.searchParams.get('last');
      if (last !== null) list = list.filter((d) => d.digest > last);
      if (list.length > opts.referrersPageSize) {
        list = list.slice(0, opts.referrersPageSize);
        const next = new URLSearchParams();
        if (artifactType !== undefined) next.set('artifactType', artifactType);
        next.set('last', list[list.length - 1]!.digest);
        res.setHeader('Link', `</v2/${r.name}/referrers/${digest}?${next.toString()}>; rel="next"`);
      }
      return sendBytes(req, res, 200, MediaType.OciIndex, Buffer.from(JSON.stringify(referrersIndex(list))));
    }
  }
}

async function manifestRoute(
  backend: ServerBackend,
  opts: HandlerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  name: string,
  reference: string,
  writable: () => WritableBackend,
  notAllowed: () => never,
): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    const m = await backend.getManifest(name, reference);
    if (!m) throw new DistributionError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`, { detail: { name, reference } });
    res.setHeader('Docker-Content-Digest', m.digest);
    res.setHeader('ETag', `"${m.digest}"`);
    return sendBytes(req, res, 200, m.mediaType, m.bytes);
  }
  if (method === 'PUT') {
    const w = writable();
    const bytes = await readBody(req, MAX_MANIFEST_BYTES);
    const result = await w.putManifest(name, reference, bytes, req.headers['content-type']);
    res.setHeader('Location', `/v2/${name}/manifests/${result.digest}`);
    res.setHeader('Docker-Content-Digest', result.digest);
    // distribution-spec "Pushing Manifests with Subject": OCI-Subject tells the client
    // the registry indexed the referrer, so it need not maintain the fallback tag.
    if (result.subject !== undefined && opts.referrersApi) res.setHeader('OCI-Subject', result.subject);
    res.setHeader('Content-Length', '0');
    res.writeHead(201).end();
    return;
  }
  if (method === 'DELETE') {
    if (!(await writable().deleteManifest(name, reference))) {
      throw new DistributionError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`, { detail: { name, reference } });
    }
    res.setHeader('Content-Length', '0');
    res.writeHead(202).end();
    return;
  }
  return notAllowed();
}

async function getBlob(backend: ServerBackend, req: http.IncomingMessage, res: http.ServerResponse, name: string, digest: Digest): Promise<void> {
  const st = await backend.statBlob(name, digest);
  if (!st) throw blobUnknown(name, digest);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('ETag', `"${digest}"`);
  const rangeHeader = req.headers.range;
  let range: { start: number; end: number } | undefined;
  if (rangeHeader !== undefined) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(rangeHeader.trim());
    if (m && (m[1] !== '' || m[2] !== '')) {
      let start: number;
      let end: number;
      if (m[1] === '') {
        // suffix range: the last N bytes
        start = Math.max(0, st.size - Number(m[2]));
        end = st.size - 1;
      } else {
        start = Number(m[1]);
        end = m[2] === '' ? st.size - 1 : Math.min(Number(m[2]), st.size - 1);
      }
      if (start >= st.size || end < start) {
        res.setHeader('Content-Range', `bytes */${st.size}`);
        res.setHeader('Content-Length', '0');
        res.writeHead(416).end();
        return;
      }
      range = { start, end };
    }
  }
  if (req.method === 'HEAD') {
    res.setHeader('Content-Length', String(st.size));
    res.writeHead(200).end();
    return;
  }
  const read = await backend.readBlob(name, digest, range);
  if (!read) throw blobUnknown(name, digest);
  if (range) {
    res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${st.size}`);
    res.setHeader('Content-Length', String(range.end - range.start + 1));
    res.writeHead(206);
  } else {
    res.setHeader('Content-Length', String(st.size));
    res.writeHead(200);
  }
  await pipeline(read.stream, res);
}

async function startUpload(w: WritableBackend, req: http.IncomingMessage, res: http.ServerResponse, name: string, url: URL): Promise<void> {
  const mount = url.searchParams.get('mount');
  if (mount !== null) {
    // distribution-spec "Mounting a blob from another repository": 201 when mounted,
    // otherwise fall through to an ordinary upload session (202).
    if (isDigest(mount)) {
      const from = url.searchParams.get('from') ?? undefined;
      // `from` names a directory on disk: only a valid repository name may get there
      const fromOk = from === undefined || NAME_RE.test(from);
      if (fromOk && (await w.mountBlob(name, from, mount))) {
        res.setHeader('Location', `/v2/${name}/blobs/${mount}`);
        res.setHeader('Docker-Content-Digest', mount);
        res.setHeader('Content-Length', '0');
        res.writeHead(201).end();
        return;
      }
    }
  }
  const digestParam = url.searchParams.get('digest');
  const id = await w.startUpload(name);
  if (digestParam !== null) {
    // "Single POST" monolithic upload
    const digest = parseDigestParam(digestParam);
    try {
      await w.completeUpload(name, id, digest, req);
    } catch (e) {
      await w.cancelUpload(name, id).catch(() => undefined);
      throw e;
    }
    return created(res, name, digest);
  }
  req.resume();
  res.setHeader('Location', `/v2/${name}/blobs/uploads/${id}`);
  res.setHeader('Docker-Upload-UUID', id);
  res.setHeader('Range', '0-0');
  res.setHeader('Content-Length', '0');
  res.writeHead(202).end();
}

async function uploadRoute(
  writable: () => WritableBackend,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  name: string,
  id: string,
  url: URL,
  notAllowed: () => never,
): Promise<void> {
  const method = req.method ?? 'GET';
  const w = writable();
  const unknown = (): DistributionError => new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown or finished in ${name}`);
  const progress = (size: number, status: number): void => {
    res.setHeader('Location', `/v2/${name}/blobs/uploads/${id}`);
    res.setHeader('Docker-Upload-UUID', id);
    // the Range header is inclusive: 0-(size-1); an empty upload reports 0-0 like Distribution
    res.setHeader('Range', `0-${Math.max(0, size - 1)}`);
    res.setHeader('Content-Length', '0');
    res.writeHead(status).end();
  };
  if (method === 'GET') {
    const size = await w.uploadSize(name, id);
    if (size === undefined) throw unknown();
    return progress(size, 204);
  }
  if (method === 'PATCH') {
    let offset: number | undefined;
    const cr = req.headers['content-range'];
    if (cr !== undefined) {
      const m = /^(?:bytes )?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(cr.trim());
      if (!m) throw new DistributionError('BLOB_UPLOAD_INVALID', `Content-Range "${cr.slice(0, 64)}" is not <start>-<end>`, { status: 416 });
      offset = Number(m[1]);
    }
    if ((await w.uploadSize(name, id)) === undefined) throw unknown();
    const size = await w.appendUpload(name, id, req, offset);
    return progress(size, 202);
  }
  if (method === 'PUT') {
    const d = url.searchParams.get('digest');
    if (d === null) throw new DistributionError('DIGEST_INVALID', 'PUT to finish an upload needs ?digest=<digest>');
    const digest = parseDigestParam(d);
    if ((await w.uploadSize(name, id)) === undefined) throw unknown();
    await w.completeUpload(name, id, digest, req);
    return created(res, name, digest);
  }
  if (method === 'DELETE') {
    if (!(await w.cancelUpload(name, id))) throw unknown();
    res.setHeader('Content-Length', '0');
    res.writeHead(204).end();
    return;
  }
  return notAllowed();
}

function created(res: http.ServerResponse, name: string, digest: Digest): void {
  res.setHeader('Location', `/v2/${name}/blobs/${digest}`);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Content-Length', '0');
  res.writeHead(201).end();
}

function parseDigestParam(s: string): Digest {
  if (!isDigest(s)) throw new DistributionError('DIGEST_INVALID', `"${s.slice(0, 140)}" is not a sha256 or sha512 digest`, { detail: { digest: s.slice(0, 140) } });
  return s;
}

function blobUnknown(name: string, digest: Digest): DistributionError {
  return new DistributionError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`, { detail: { digest } });
}

/**
 * Paginated listing (distribution-spec "Listing Tags" and "_catalog"): entries after
 * `last` in lexical order, at most `n`, and a `Link: <...>; rel="next"` when more remain.
 */
function sendPage(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  base: string,
  all: string[],
  body: (items: string[]) => unknown,
): void {
  const last = url.searchParams.get('last');
  const nParam = url.searchParams.get('n');
  let items = last !== null ? all.filter((t) => t > last) : all;
  if (nParam !== null) {
    if (!/^\d+$/.test(nParam)) throw new DistributionError('UNSUPPORTED', `n=${nParam.slice(0, 20)} is not a number`, { status: 400 });
    const n = Number(nParam);
    if (items.length > n) {
      items = items.slice(0, n);
      const next = items[items.length - 1];
      if (next !== undefined) res.setHeader('Link', `<${base}?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`);
    }
  }
  sendJson(req, res, 200, body(items));
}

function sendJson(req: http.IncomingMessage, res: http.ServerResponse, status: number, value: unknown): void {
  sendBytes(req, res, status, 'application/json', Buffer.from(JSON.stringify(value)));
}

function sendBytes(req: http.IncomingMessage, res: http.ServerResponse, status: number, contentType: string, bytes: Buffer): void {
  req.resume();
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', String(bytes.byteLength));
  res.writeHead(status);
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

function notFound(res: http.ServerResponse): void {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.writeHead(404).end('404 page not found\n');
}

async function readBody(req: Readable & { headers: http.IncomingHttpHeaders }, limit: number): Promise<Buffer> {
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

function sendError(req: http.IncomingMessage, res: http.ServerResponse, e: unknown, opts: HandlerOptions): void {
  let err: DistributionError;
  if (e instanceof DistributionError) err = e;
  else if (isAirlockError(e, 'DIGEST_MISMATCH')) err = new DistributionError('DIGEST_INVALID', e.message, { cause: e });
  else if (isAirlockError(e, 'SIZE_MISMATCH')) err = new DistributionError('SIZE_INVALID', e.message, { cause: e });
  else {
    // a client that went away mid-body is not a server failure worth a 500 line
    if (req.destroyed || res.destroyed) return;
    opts.log?.(`error: ${req.method ?? '-'} ${req.url ?? '-'}: ${(e as Error)?.message ?? String(e)}`);
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
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // An unread request body (rejected before we consumed it): close the connection
  // rather than read what may be gigabytes we do not want.
  if (!req.complete) {
    res.setHeader('Connection', 'close');
    req.resume();
  }
  const body = Buffer.from(JSON.stringify(err.toJSON()));
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', String(body.byteLength));
  res.writeHead(err.status);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Parse `host:port`, `[v6]:port` or `:port`. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new AirlockError('USAGE', `--listen "${listen}" is not HOST:PORT (for example 127.0.0.1:5000, or port 0 for any free port)`);
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]);
  return { host, port };
}

/** Start the registry in this process. Port 0 picks a free port; `url` and `host` say which. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  let backend = opts.backend;
  if (!backend) {
    if ((opts.root === undefined) === (opts.archive === undefined)) {
      throw new AirlockError('USAGE', 'serve needs either a storage directory (--root DIR) or an archive (--archive FILE), not both');
    }
    backend = opts.archive !== undefined ? await ArchiveBackend.open(opts.archive) : await DirectoryBackend.open(opts.root!);
  }
  const { host, port } = parseListen(opts.listen ?? '127.0.0.1:5000');
  const handler = createHandler(backend, {
    referrersApi: opts.referrersApi ?? true,
    referrersPageSize: Math.max(1, opts.referrersPageSize ?? 1000),
    readOnly: opts.readOnly ?? false,
    log: opts.log,
  });
  let server: http.Server;
  if (opts.tls) {
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(opts.tls.cert), readFile(opts.tls.key)]);
    } catch (e) {
      throw new AirlockError('IO', `cannot read the TLS certificate or key: ${(e as Error).message}`, { cause: e, side: 'local' });
    }
    server = https.createServer({ cert, key }, handler);
  } else {
    server = http.createServer(handler);
  }
  // large blobs stream for minutes: no request timeout, but keep idle sockets bounded
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
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
  const scheme = opts.tls ? 'https' : 'http';
  let closed: Promise<void> | undefined;
  return {
    url: `${scheme}://${hostPort}`,
    host: hostPort,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive connections go now; requests in flight get a grace period to
        // finish, then are cut (the client retries; an upload stays resumable on disk).
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), opts.shutdownGraceMs ?? 5000).unref();
      }).then(async () => {
        await backend.close?.();
      });
      return closed;
    },
  };
}
