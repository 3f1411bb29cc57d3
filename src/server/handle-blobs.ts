import { pipeline } from 'node:stream/promises';
import { type Digest, isDigest } from '../oci/digest.js';
import type { AppendOptions, WritableBackend } from './backend.js';
import { DistributionError } from './errors.js';
import { may, notAllowed, type RequestContext, writable } from './handle-context.js';
import { NAME_RE } from './router.js';
import { blobUnknown, created, parseDigestParam, sendEmpty } from './responses.js';

/** `/v2/<name>/blobs/<digest>`: GET and HEAD (with ranges), DELETE. */
export async function blobRoute(ctx: RequestContext, name: string, digestParam: string): Promise<void> {
  const digest = parseDigestParam(digestParam);
  if (ctx.method === 'GET' || ctx.method === 'HEAD') return getBlob(ctx, name, digest);
  if (ctx.method === 'DELETE') {
    if (!(await writable(ctx).deleteBlob(name, digest))) throw blobUnknown(name, digest);
    return sendEmpty(ctx, 202);
  }
  return notAllowed(ctx);
}

async function getBlob(ctx: RequestContext, name: string, digest: Digest): Promise<void> {
  const { req, res, backend } = ctx;
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
        return sendEmpty(ctx, 416);
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
  // a client that stops reading holds a socket and a file: cut it after the body timeout
  const socket = req.socket;
  socket.setTimeout(ctx.opts.limits.bodyTimeoutMs, () => socket.destroy());
  await pipeline(read.stream, res);
}

/** `POST /v2/<name>/blobs/uploads/`: a session, a single-request upload, or a mount. */
export async function startUploadRoute(ctx: RequestContext, name: string): Promise<void> {
  if (ctx.method !== 'POST') return notAllowed(ctx);
  const w = writable(ctx);
  const { req, res, url } = ctx;
  const mount = url.searchParams.get('mount');
  if (mount !== null && isDigest(mount)) {
    // distribution-spec "Mounting a blob from another repository": 201 when mounted,
    // otherwise an ordinary upload session (202). Only from a repository the caller may
    // pull from: a mount must not copy what the caller could not read. `from` also names
    // a directory on disk, so only a valid repository name gets there.
    const from = url.searchParams.get('from') ?? undefined;
    const fromOk = from === undefined || (NAME_RE.test(from) && may(ctx, from, 'pull'));
    if (fromOk && (await w.mountBlob(name, from, mount, (r) => may(ctx, r, 'pull')))) {
      res.setHeader('Location', `/v2/${name}/blobs/${mount}`);
      res.setHeader('Docker-Content-Digest', mount);
      return sendEmpty(ctx, 201);
    }
  }
  const digestParam = url.searchParams.get('digest');
  const digest = digestParam === null ? undefined : parseDigestParam(digestParam);
  const id = await w.startUpload(name);
  if (digest !== undefined) {
    // "Single POST" monolithic upload
    try {
      await w.completeUpload(name, id, digest, req, chunkOptions(ctx, false));
    } catch (e) {
      await w.cancelUpload(name, id).catch(() => undefined);
      throw e;
    }
    return created(ctx, name, digest);
  }
  req.resume();
  res.setHeader('Location', `/v2/${name}/blobs/uploads/${id}`);
  res.setHeader('Docker-Upload-UUID', id);
  res.setHeader('Range', '0-0');
  return sendEmpty(ctx, 202);
}

/** `/v2/<name>/blobs/uploads/<id>`: GET (status), PATCH (a chunk), PUT (finish), DELETE (cancel). */
export async function uploadRoute(ctx: RequestContext, name: string, id: string): Promise<void> {
  const { res, url, method } = ctx;
  const w: WritableBackend = writable(ctx);
  const unknown = (): DistributionError => new DistributionError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown or finished in ${name}`);
  const progress = (size: number, status: number): void => {
    res.setHeader('Location', `/v2/${name}/blobs/uploads/${id}`);
    res.setHeader('Docker-Upload-UUID', id);
    // the Range header is inclusive: 0-(size-1); an empty upload reports 0-0 like Distribution
    res.setHeader('Range', `0-${Math.max(0, size - 1)}`);
    sendEmpty(ctx, status);
  };
  if (method === 'GET') {
    const size = await w.uploadSize(name, id);
    if (size === undefined) throw unknown();
    return progress(size, 204);
  }
  if (method === 'PATCH') {
    const opts = chunkOptions(ctx, true);
    if ((await w.uploadSize(name, id)) === undefined) throw unknown();
    return progress(await w.appendUpload(name, id, ctx.req, opts), 202);
  }
  if (method === 'PUT') {
    const d = url.searchParams.get('digest');
    if (d === null) throw new DistributionError('DIGEST_INVALID', 'PUT to finish an upload needs ?digest=<digest>');
    const digest = parseDigestParam(d);
    const opts = chunkOptions(ctx, true);
    if ((await w.uploadSize(name, id)) === undefined) throw unknown();
    await w.completeUpload(name, id, digest, ctx.req, opts);
    return created(ctx, name, digest);
  }
  if (method === 'DELETE') {
    if (!(await w.cancelUpload(name, id))) throw unknown();
    return sendEmpty(ctx, 204);
  }
  return notAllowed(ctx);
}

/**
 * Where a chunk must start and how long it must be, from `Content-Range: <start>-<end>`
 * (distribution-spec "Pushing a blob in chunks": inclusive on both ends) and
 * `Content-Length`. Both are checked against each other before a byte is read, and the
 * body against them while it is read (dir-uploads.ts).
 */
function chunkOptions(ctx: RequestContext, rangeAllowed: boolean): AppendOptions {
  const cl = ctx.req.headers['content-length'];
  const length = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
  const cr = ctx.req.headers['content-range'];
  if (cr === undefined || !rangeAllowed) return length === undefined ? {} : { length };
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(cr.trim());
  if (!m) throw new DistributionError('BLOB_UPLOAD_INVALID', `Content-Range "${cr.slice(0, 64)}" is not <start>-<end>`, { status: 416 });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new DistributionError('BLOB_UPLOAD_INVALID', `Content-Range ${start}-${end} ends before it starts`, { status: 416 });
  const span = end - start + 1;
  if (length !== undefined && length !== span) {
    throw new DistributionError('BLOB_UPLOAD_INVALID', `Content-Range ${start}-${end} is ${span} bytes but Content-Length is ${length}; send matching values`);
  }
  return { offset: start, length: span };
}
