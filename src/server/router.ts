import { NAME_PATTERN } from './backend.js';

/** The endpoints of distribution-spec v1.1 ("Endpoints" table), as `airlock serve` routes them. */
export type Route =
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

export const NAME_RE = new RegExp(`^${NAME_PATTERN}$`);

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

export function route(pathname: string): Route {
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
