import { MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { notAllowed, type RequestContext, writable } from './handle-context.js';
import { readBody, sendBytes, sendEmpty } from './responses.js';
import { manifestUnknown, parseReadReference } from './validate.js';

/** `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE. */
export async function manifestRoute(ctx: RequestContext, name: string, reference: string): Promise<void> {
  const { res, method } = ctx;
  if (method === 'GET' || method === 'HEAD') {
    // a reference that cannot exist is unknown: 404, never 400 (validate.ts)
    parseReadReference(name, reference);
    const m = await ctx.backend.getManifest(name, reference);
    if (!m) throw manifestUnknown(name, reference);
    res.setHeader('Docker-Content-Digest', m.digest);
    res.setHeader('ETag', `"${m.digest}"`);
    return sendBytes(ctx, 200, m.mediaType, m.bytes);
  }
  if (method === 'PUT') {
    const w = writable(ctx);
    const bytes = await readBody(ctx.req, MAX_MANIFEST_BYTES);
    const result = await w.putManifest(name, reference, bytes, ctx.req.headers['content-type']);
    res.setHeader('Location', `/v2/${name}/manifests/${result.digest}`);
    res.setHeader('Docker-Content-Digest', result.digest);
    // distribution-spec "Pushing Manifests with Subject": OCI-Subject tells the client
    // the registry indexed the referrer, so it need not maintain the fallback tag.
    if (result.subject !== undefined && ctx.opts.referrersApi) res.setHeader('OCI-Subject', result.subject);
    return sendEmpty(ctx, 201);
  }
  if (method === 'DELETE') {
    const w = writable(ctx);
    parseReadReference(name, reference);
    if (!(await w.deleteManifest(name, reference))) throw manifestUnknown(name, reference);
    return sendEmpty(ctx, 202);
  }
  return notAllowed(ctx);
}
