import { AirlockError, type ErrorCode } from '../../errors.js';

/**
 * What went wrong with an operator catalog, in `AirlockError.detail.catalog`, so a
 * caller can branch without reading the message.
 *
 * - `no-label`: the image config has no `operators.operatorframework.io.index.configs.v1`
 *   label, so it is not a file-based catalog;
 * - `layer`: a layer cannot be read (media type, compression, hostile tar paths, links);
 * - `syntax`: a catalog file is not a stream of JSON objects or YAML documents;
 * - `schema`: an object breaks the olm.* schemas (wrong types, duplicates, unknown package);
 * - `graph`: a channel's upgrade graph is broken (several heads, a cycle) where the filter needs it;
 * - `filter`: the image-set asks for something the catalog does not have, or that
 *   leaves a package without its default channel (these are CONFIG errors: the fix is in the file).
 *
 * The AirlockError code is MANIFEST_INVALID (source content is bad, exit 1) except for
 * `filter`, which is CONFIG (exit 2).
 */
export type CatalogErrorKind = 'no-label' | 'layer' | 'syntax' | 'schema' | 'graph' | 'filter';

export function catalogError(kind: CatalogErrorKind, message: string, detail: Record<string, unknown> = {}): AirlockError {
  const code: ErrorCode = kind === 'filter' ? 'CONFIG' : 'MANIFEST_INVALID';
  return new AirlockError(code, message, { side: kind === 'filter' ? 'local' : 'source', detail: { catalog: kind, ...detail } });
}
