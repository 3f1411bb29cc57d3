import { MediaType } from '../oci/media-types.js';
import { filterByArtifactType, referrersIndex } from '../oci/referrers.js';
import { DistributionError } from './errors.js';
import { may, notAllowed, type RequestContext } from './handle-context.js';
import { notFound, parseDigestParam, sendBytes, sendPage } from './responses.js';

/** `GET /v2/_catalog`: the repositories the principal may pull from, paged. */
export async function catalogRoute(ctx: RequestContext): Promise<void> {
  if (ctx.method !== 'GET') return notAllowed(ctx);
  const all = (await ctx.backend.repositories()).filter((r) => may(ctx, r, 'pull'));
  return sendPage(ctx, '/v2/_catalog', all, (items) => ({ repositories: items }));
}

/** `GET /v2/<name>/tags/list`, paged. */
export async function tagsRoute(ctx: RequestContext, name: string): Promise<void> {
  if (ctx.method !== 'GET') return notAllowed(ctx);
  const tags = await ctx.backend.tags(name);
  if (tags === undefined) throw new DistributionError('NAME_UNKNOWN', `repository ${name} is not known to this registry`, { detail: { name } });
  return sendPage(ctx, `/v2/${name}/tags/list`, tags, (items) => ({ name, tags: items }));
}

/** `GET /v2/<name>/referrers/<digest>?artifactType=` (distribution-spec "Listing Referrers"). */
export async function referrersRoute(ctx: RequestContext, name: string, digestParam: string): Promise<void> {
  const { res, url, opts } = ctx;
  // With the API off, answer like a pre-1.1 registry (Distribution 2.8): a plain 404,
  // so clients fall back to the referrers tag schema.
  if (!opts.referrersApi) return notFound(ctx);
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return notAllowed(ctx);
  const digest = parseDigestParam(digestParam);
  const all = await ctx.backend.referrers(name, digest);
  const artifactType = url.searchParams.get('artifactType') ?? undefined;
  let list = filterByArtifactType(all, artifactType);
  // report the filter that was applied
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
    res.setHeader('Link', `</v2/${name}/referrers/${digest}?${next.toString()}>; rel="next"`);
  }
  return sendBytes(ctx, 200, MediaType.OciIndex, Buffer.from(JSON.stringify(referrersIndex(list))));
}
