import { catalogError } from './errors.js';

/**
 * The part of a file-based catalog (operator-registry alpha/declcfg) that filtering
 * and image collection need, and nothing more: no icons, descriptions, CSVs, CRDs or
 * other `olm.bundle.object` properties. A Red Hat catalog holds thousands of bundles of
 * tens of kilobytes to megabytes each; this model keeps a few hundred bytes per bundle.
 */

export const SCHEMA_PACKAGE = 'olm.package';
export const SCHEMA_CHANNEL = 'olm.channel';
export const SCHEMA_BUNDLE = 'olm.bundle';
export const SCHEMA_DEPRECATIONS = 'olm.deprecations';

export interface FbcPackage {
  readonly name: string;
  /** '' when the catalog leaves it unset */
  readonly defaultChannel: string;
}

export interface FbcChannelEntry {
  readonly name: string;
  readonly replaces?: string;
  readonly skips: readonly string[];
  /** kept for the record; OLM uses it at upgrade time, but it adds no edge to the channel graph (opm's Channel.Head) */
  readonly skipRange?: string;
}

export interface FbcChannel {
  readonly package: string;
  readonly name: string;
  readonly entries: readonly FbcChannelEntry[];
}

export interface FbcRelatedImage {
  readonly name: string;
  readonly image: string;
}

export interface FbcBundle {
  readonly package: string;
  readonly name: string;
  /** the bundle image, as written in the catalog ('' when unset) */
  readonly image: string;
  /** `olm.package` property `version`, as written (undefined when the bundle has none) */
  readonly version?: string;
  readonly relatedImages: readonly FbcRelatedImage[];
}

export interface FbcDeprecationEntry {
  readonly schema: string;
  /** '' for a package-level deprecation */
  readonly name: string;
  readonly message: string;
}

export interface FbcDeprecation {
  readonly package: string;
  readonly entries: readonly FbcDeprecationEntry[];
}

/** An object of another schema: kept by name only (opm passes them through as `Others`). */
export interface FbcOther {
  readonly schema: string;
  readonly package: string;
  readonly name: string;
}

/** One object read from a file, reduced. */
export type FbcRecord =
  | { readonly schema: typeof SCHEMA_PACKAGE; readonly value: FbcPackage }
  | { readonly schema: typeof SCHEMA_CHANNEL; readonly value: FbcChannel }
  | { readonly schema: typeof SCHEMA_BUNDLE; readonly value: FbcBundle }
  | { readonly schema: typeof SCHEMA_DEPRECATIONS; readonly value: FbcDeprecation }
  | { readonly schema: 'other'; readonly value: FbcOther };

/** The catalog, reduced, as the filter sees it. */
export interface FbcCatalog {
  readonly packages: readonly FbcPackage[];
  readonly channels: readonly FbcChannel[];
  readonly bundles: readonly FbcBundle[];
  readonly deprecations: readonly FbcDeprecation[];
  readonly others: readonly FbcOther[];
}

/**
 * A field of a decoded object the way Go's encoding/json finds it for opm: the exact
 * key, else a key equal under case folding (opm decodes into structs, and its Meta
 * lookup of schema/package/name is case-insensitive too).
 */
export function goField(o: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(o, name)) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

/** opm's extractUniqueMetaKeys: two top-level keys equal under case folding are an error. */
function checkUniqueKeys(o: Record<string, unknown>, where: string): void {
  const seen = new Map<string, string>();
  for (const k of Object.keys(o)) {
    const f = k.toLowerCase();
    const prev = seen.get(f);
    if (prev !== undefined) throw catalogError('schema', `${where}: duplicate keys "${prev}" and "${k}"`);
    seen.set(f, k);
  }
}

function str(o: Record<string, unknown>, name: string, where: string): string {
  const v = goField(o, name);
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw catalogError('schema', `${where}: "${name}" must be a string`);
  return v;
}

function list(o: Record<string, unknown>, name: string, where: string): unknown[] {
  const v = goField(o, name);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw catalogError('schema', `${where}: "${name}" must be a list`);
  return v;
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw catalogError('schema', `${where} must be an object`);
  return v as Record<string, unknown>;
}

/** The schema of a decoded object (case-insensitive key); '' when it has none. */
export function schemaOf(o: Record<string, unknown>): string {
  const v = goField(o, 'schema');
  return typeof v === 'string' ? v : '';
}

/**
 * Reduce one decoded catalog object. Throws a `schema` catalog error where opm's
 * loader (declcfg addMeta) would fail: a missing schema, or a field of the wrong type.
 */
export function reduceObject(o: Record<string, unknown>, where: string): FbcRecord {
  checkUniqueKeys(o, where);
  const schema = goField(o, 'schema');
  if (typeof schema !== 'string' || schema === '') throw catalogError('schema', `${where}: the object has no "schema" field`);
  switch (schema) {
    case SCHEMA_PACKAGE:
      return { schema, value: { name: str(o, 'name', where), defaultChannel: str(o, 'defaultChannel', where) } };
    case SCHEMA_CHANNEL: {
      const pkg = str(o, 'package', where);
      const name = str(o, 'name', where);
      const w = `${where} (channel "${name}")`;
      const entries = list(o, 'entries', w).map((e, i) => {
        const eo = obj(e, `${w} entries[${i}]`);
        const ew = `${w} entries[${i}]`;
        const replaces = str(eo, 'replaces', ew);
        const skipRange = str(eo, 'skipRange', ew);
        const skips = list(eo, 'skips', ew).map((s) => {
          if (typeof s !== 'string') throw catalogError('schema', `${ew}: "skips" must be a list of bundle names`);
          return s;
        });
        return { name: str(eo, 'name', ew), ...(replaces !== '' ? { replaces } : {}), skips, ...(skipRange !== '' ? { skipRange } : {}) };
      });
      return { schema, value: { package: pkg, name, entries } };
    }
    case SCHEMA_BUNDLE: {
      const name = str(o, 'name', where);
      const w = `${where} (bundle "${name}")`;
      let version: string | undefined;
      for (const [i, p] of list(o, 'properties', w).entries()) {
        const po = obj(p, `${w} properties[${i}]`);
        if (goField(po, 'type') !== SCHEMA_PACKAGE) continue;
        const value = obj(goField(po, 'value'), `${w} properties[${i}].value`);
        const ver = goField(value, 'version');
        if (typeof ver !== 'string') throw catalogError('schema', `${w}: the olm.package property has no version string`);
        version = ver;
        break;
      }
      const relatedImages = list(o, 'relatedImages', w).map((r, i) => {
        const ro = obj(r, `${w} relatedImages[${i}]`);
        return { name: str(ro, 'name', `${w} relatedImages[${i}]`), image: str(ro, 'image', `${w} relatedImages[${i}]`) };
      });
      return {
        schema,
        value: { package: str(o, 'package', where), name, image: str(o, 'image', w), ...(version !== undefined ? { version } : {}), relatedImages },
      };
    }
    case SCHEMA_DEPRECATIONS: {
      const pkg = str(o, 'package', where);
      const w = `${where} (deprecations of "${pkg}")`;
      const entries = list(o, 'entries', w).map((e, i) => {
        const eo = obj(e, `${w} entries[${i}]`);
        const ref = obj(goField(eo, 'reference') ?? {}, `${w} entries[${i}].reference`);
        return { schema: str(ref, 'schema', w), name: str(ref, 'name', w), message: str(eo, 'message', w) };
      });
      return { schema, value: { package: pkg, entries } };
    }
    default:
      return { schema: 'other', value: { schema, package: str(o, 'package', where), name: str(o, 'name', where) } };
  }
}

/** Running totals of what was read, for the report and the memory script. */
export interface CatalogStats {
  files: number;
  objects: number;
  /** objects per schema, other schemas included */
  bySchema: Record<string, number>;
  /** files left out by `.indexignore` */
  ignoredFiles: number;
}

/**
 * Assemble records (in file order) into a catalog, refusing what opm's model
 * conversion refuses and what would make the filter ambiguous: duplicate packages,
 * channels or bundles, and channels, bundles or deprecations of unknown packages.
 */
export class CatalogBuilder {
  readonly #packages = new Map<string, FbcPackage>();
  readonly #channels = new Map<string, FbcChannel>();
  readonly #bundles = new Map<string, FbcBundle>();
  readonly #deprecations = new Map<string, FbcDeprecation>();
  readonly #others: FbcOther[] = [];

  add(r: FbcRecord, where: string): void {
    switch (r.schema) {
      case SCHEMA_PACKAGE:
        if (r.value.name === '') throw catalogError('schema', `${where}: a package has no name`);
        if (this.#packages.has(r.value.name)) throw catalogError('schema', `${where}: package "${r.value.name}" is defined twice`);
        this.#packages.set(r.value.name, r.value);
        return;
      case SCHEMA_CHANNEL: {
        const k = `${r.value.package}\0${r.value.name}`;
        if (r.value.name === '') throw catalogError('schema', `${where}: a channel of package "${r.value.package}" has no name`);
        if (this.#channels.has(k)) throw catalogError('schema', `${where}: channel "${r.value.name}" of package "${r.value.package}" is defined twice`);
        this.#channels.set(k, r.value);
        return;
      }
      case SCHEMA_BUNDLE: {
        const k = `${r.value.package}\0${r.value.name}`;
        if (r.value.name === '') throw catalogError('schema', `${where}: a bundle of package "${r.value.package}" has no name`);
        if (this.#bundles.has(k)) throw catalogError('schema', `${where}: bundle "${r.value.name}" of package "${r.value.package}" is defined twice`);
        this.#bundles.set(k, r.value);
        return;
      }
      case SCHEMA_DEPRECATIONS:
        if (this.#deprecations.has(r.value.package)) throw catalogError('schema', `${where}: package "${r.value.package}" has two olm.deprecations objects (opm allows one)`);
        this.#deprecations.set(r.value.package, r.value);
        return;
      default:
        this.#others.push(r.value);
    }
  }

  build(): FbcCatalog {
    for (const c of this.#channels.values()) {
      if (!this.#packages.has(c.package)) throw catalogError('schema', `channel "${c.name}" belongs to package "${c.package}", which the catalog does not define`);
    }
    for (const b of this.#bundles.values()) {
      if (!this.#packages.has(b.package)) throw catalogError('schema', `bundle "${b.name}" belongs to package "${b.package}", which the catalog does not define`);
    }
    for (const d of this.#deprecations.values()) {
      if (!this.#packages.has(d.package)) throw catalogError('schema', `deprecations name package "${d.package}", which the catalog does not define`);
    }
    return Object.freeze({
      packages: [...this.#packages.values()],
      channels: [...this.#channels.values()],
      bundles: [...this.#bundles.values()],
      deprecations: [...this.#deprecations.values()],
      others: [...this.#others],
    });
  }
}
