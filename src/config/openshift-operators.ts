import type { Platform } from '../oci/manifest.js';
import { Reference, TAG_RE } from '../oci/reference.js';
import { parseLooseVersion, VersionRange, type LooseVersion } from '../openshift/catalog/semver.js';
import { requireField, type SourcePos } from './trust-policy.js';
import type { YamlCursor } from './yaml-node.js';

/**
 * `mirror.operators[]` of an oc-mirror ImageSetConfiguration (mirror.openshift.io/v2alpha1),
 * parsed into closed types.
 *
 * The fields and the combinations refused follow oc-mirror v2 (api/v2alpha1 Operator,
 * IncludePackage, IncludeChannel; config/validate.go) and the filter library it pins,
 * sherine-k/catalog-filter v0.0.5 (FilterConfiguration.Validate and FilterCatalog):
 *
 * - package-level and channel-level ranges together (oc-mirror validate.go);
 * - `full: true` with any range, or with selected bundles (catalog-filter);
 * - selected bundles with channels or a package range (catalog-filter Validate);
 * - a duplicate catalog (same catalog/targetCatalog/targetTag), package or channel;
 * - a `minVersion`/`maxVersion` that is not a version (Masterminds NewVersion);
 * - a `targetCatalog` that is not repository path components (no tag, no digest).
 *
 * airlock also refuses, with the field named, what oc-mirror lets through silently
 * or only fails on much later: a range whose minimum is above its maximum, a
 * catalog without a tag or digest (oc-mirror's reference parser refuses it too),
 * an `oci://` catalog on disk, and `targetCatalogSourceTemplate`.
 *
 * `selectedBundles` is the name this project's issue uses; oc-mirror's own field was
 * `bundles` (catalog-filter's JSON tag), shipped as a technology preview in 4.16/4.17
 * and removed from oc-mirror v2 in CLID-303. Both spellings are read, with the
 * catalog-filter semantics; giving both is refused.
 */

/** One `operators[]` entry. */
export interface OperatorCatalogConfig {
  /** the catalog (index) image, as written: by tag, by digest, or both */
  readonly catalog: Reference;
  /**
   * `full: true`: whole channels instead of their heads. With no packages listed the
   * whole catalog is mirrored and nothing is filtered (oc-mirror's isFullCatalog).
   */
  readonly full: boolean;
  readonly packages: readonly OperatorPackageConfig[];
  /**
   * The opt-in filtered catalog image: present when `targetCatalog` or `targetTag`
   * is given. `repository` replaces the catalog's repository path (oc-mirror's
   * targetCatalog); `tag` is the filtered image's tag (oc-mirror's targetTag).
   */
  readonly target?: { readonly repository?: string; readonly tag?: string };
  /** platforms of the catalog and operator images to keep; empty = all */
  readonly platforms: readonly Platform[];
  readonly source: SourcePos;
}

export interface OperatorPackageConfig {
  readonly name: string;
  /** the new default channel, required when the filter removes the catalog's default channel */
  readonly defaultChannel?: string;
  /** package-level `minVersion`/`maxVersion` (applies to every channel kept) */
  readonly range?: VersionRange;
  readonly channels: readonly OperatorChannelConfig[];
  /** bundle names: exactly these bundles, in every channel that has them */
  readonly selectedBundles: readonly string[];
  readonly source: SourcePos;
}

export interface OperatorChannelConfig {
  readonly name: string;
  readonly range?: VersionRange;
  readonly source: SourcePos;
}

/** What the operator section of a config asks, plus notes for the CLI to print. */
export interface OperatorsSection {
  readonly operators: readonly OperatorCatalogConfig[];
  readonly warnings: readonly string[];
}

/**
 * Does this entry rebuild the catalog? oc-mirror rebuilds unless `full: true` and no
 * packages; airlock builds the filtered image only when it is asked for (a target).
 */
export function isFullCatalog(op: OperatorCatalogConfig): boolean {
  return op.full && op.packages.length === 0;
}

/** oc-mirror's GetUniqueName: the catalog with targetCatalog / targetTag applied. */
export function operatorUniqueName(op: OperatorCatalogConfig): string {
  if (op.target === undefined) return op.catalog.toString();
  const repo = op.target.repository ?? op.catalog.repository;
  if (op.target.tag !== undefined) return `${op.catalog.registry}/${repo}:${op.target.tag}`;
  const id = `${op.catalog.tag !== undefined ? `:${op.catalog.tag}` : ''}${op.catalog.digest !== undefined ? `@${op.catalog.digest}` : ''}`;
  return `${op.catalog.registry}/${repo}${id}`;
}

const OPERATOR_FIELDS = ['catalog', 'targetCatalog', 'targetTag', 'full', 'packages', 'skipDependencies', 'targetCatalogSourceTemplate', 'platforms'];
const PACKAGE_FIELDS = ['name', 'defaultChannel', 'minVersion', 'maxVersion', 'channels', 'selectedBundles', 'bundles'];
const CHANNEL_FIELDS = ['name', 'minVersion', 'maxVersion'];
/** oc-mirror's IsValidPathComponent: one or more path components, no tag or digest. */
const TARGET_CATALOG_RE = /^[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*)*$/;
/** Kubernetes object names and package/channel names in catalogs are short; a longer value is a mistake. */
const MAX_NAME = 253;

/**
 * Parse `mirror.operators` (the cursor of that field). The existing image-set loader
 * calls this in place of its refusal of `operators`.
 */
export function parseOperators(c: YamlCursor): OperatorsSection {
  const warnings: string[] = [];
  const operators: OperatorCatalogConfig[] = [];
  const unique = new Map<string, YamlCursor>();
  for (const item of c.seq('a list of catalogs ({catalog, packages, …})')) {
    const op = parseOperator(item, warnings);
    const key = operatorUniqueName(op);
    const twin = unique.get(key);
    if (twin !== undefined) {
      item.fail(`catalog ${key} is already listed at line ${twin.line}; list each catalog once (or give it another targetCatalog/targetTag)`);
    }
    unique.set(key, item);
    operators.push(op);
  }
  return { operators: Object.freeze(operators), warnings: Object.freeze(warnings) };
}

function parseOperator(item: YamlCursor, warnings: string[]): OperatorCatalogConfig {
  const m = item.map(OPERATOR_FIELDS, 'a mapping {catalog, packages, full, targetCatalog, targetTag}');
  const catalogC = requireField(item, m, 'catalog');
  const catalog = parseCatalogRef(catalogC);
  const template = m.get('targetCatalogSourceTemplate');
  if (template?.present === true) {
    template.fail('is not supported by airlock: unpack writes the CatalogSource itself (by digest); edit the written file if you need more fields');
  }
  const skip = m.get('skipDependencies');
  if (skip?.present === true) {
    skip.bool();
    warnings.push(`${skip.file}:${skip.line}: ${skip.path} has no effect: neither oc-mirror v2 nor airlock resolves operator dependencies; list every package you need`);
  }
  const fullC = m.get('full');
  const full = fullC?.present === true ? fullC.bool() : false;

  let repository: string | undefined;
  const tc = m.get('targetCatalog');
  if (tc?.present === true) {
    repository = tc.str('a repository path');
    if (!TARGET_CATALOG_RE.test(repository) || repository.length > 255) {
      tc.fail(`"${repository}" is not a repository path: write one or more lower-case path components separated by / (letters, digits, and . _ __ - between them), without registry, tag or digest`);
    }
  }
  let tag: string | undefined;
  const tt = m.get('targetTag');
  if (tt?.present === true) {
    tag = tt.str('a tag');
    if (!TAG_RE.test(tag)) tt.fail(`"${tag}" is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }

  const packages: OperatorPackageConfig[] = [];
  const pc = m.get('packages');
  const byName = new Map<string, YamlCursor>();
  for (const p of pc?.present === true ? pc.seq('a list of packages ({name, channels, …})') : []) {
    const pkg = parsePackage(p, full);
    const twin = byName.get(pkg.name);
    if (twin !== undefined) p.fail(`package "${pkg.name}" is already listed at line ${twin.line}; list each package once`);
    byName.set(pkg.name, p);
    packages.push(pkg);
  }

  const platC = m.get('platforms');
  const platforms = platC?.present === true ? parsePlatforms(platC) : [];

  const target = repository !== undefined || tag !== undefined ? { ...(repository !== undefined ? { repository } : {}), ...(tag !== undefined ? { tag } : {}) } : undefined;
  return Object.freeze({
    catalog,
    full,
    packages: Object.freeze(packages),
    ...(target !== undefined ? { target: Object.freeze(target) } : {}),
    platforms: Object.freeze(platforms),
    source: { file: item.file, line: item.line },
  });
}

function parseCatalogRef(c: YamlCursor): Reference {
  const s = c.str('an image reference');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    const scheme = s.slice(0, s.indexOf('://'));
    c.fail(
      scheme === 'oci'
        ? `"${s}": catalogs on disk (oci://) are not supported; push the catalog to a registry and name it there`
        : `"${s}": a transport prefix (${scheme}://) is not supported; write registry/repository:tag or @digest`,
    );
  }
  let ref: Reference;
  try {
    ref = Reference.parse(s);
  } catch (e) {
    const why = (e as Error).message.replace(/^image reference "[^"]*": /, '');
    return c.fail(`"${s}" is not a valid image reference (${why}); write registry/repository:tag or @digest`);
  }
  if (ref.tag === undefined && ref.digest === undefined) {
    c.fail(`"${s}" has neither a tag nor a digest; name the catalog version (e.g. :v4.18) or pin it by @sha256:…`);
  }
  return ref;
}

function parseName(c: YamlCursor, what: string): string {
  const s = c.str(what);
  if (s.trim() === '') c.fail('must not be empty');
  if (s !== s.trim()) c.fail(`"${s}" has leading or trailing spaces`);
  if (s.length > MAX_NAME) c.fail(`is longer than ${MAX_NAME} characters`);
  return s;
}

function parseVersion(c: YamlCursor | undefined): { v: LooseVersion; at: YamlCursor } | undefined {
  if (c?.present !== true) return undefined;
  // YAML reads `maxVersion: 1.2` as a number; oc-mirror's Go decoder would refuse it too (string field).
  if (!c.isString()) c.fail('must be a version string; quote it (e.g. "1.2.0")');
  const s = c.str();
  const v = parseLooseVersion(s);
  if (v === undefined) return c.fail(`"${s}" must respect semantic versioning notation (e.g. 1.2.3 or 1.2.3-rc.1)`);
  return { v, at: c };
}

function parseRange(m: Map<string, YamlCursor>): { range?: VersionRange; at?: YamlCursor } {
  const min = parseVersion(m.get('minVersion'));
  const max = parseVersion(m.get('maxVersion'));
  if (min === undefined && max === undefined) return {};
  const range = new VersionRange(min?.v, max?.v);
  if (range.empty) {
    (max?.at ?? min!.at).fail(`minVersion ${min!.v.version.raw} is above maxVersion ${max!.v.version.raw}: no bundle can match`);
  }
  return { range, at: (min ?? max)!.at };
}

function parsePackage(p: YamlCursor, full: boolean): OperatorPackageConfig {
  const m = p.map(PACKAGE_FIELDS, 'a mapping {name, channels, minVersion, maxVersion, defaultChannel, selectedBundles}');
  const name = parseName(requireField(p, m, 'name'), 'a package name');
  const dc = m.get('defaultChannel');
  const defaultChannel = dc?.present === true ? parseName(dc, 'a channel name') : undefined;
  const { range, at: rangeAt } = parseRange(m);

  const channels: OperatorChannelConfig[] = [];
  const chC = m.get('channels');
  const seen = new Map<string, YamlCursor>();
  for (const ch of chC?.present === true ? chC.seq('a list of channels ({name, minVersion, maxVersion})') : []) {
    const cm = ch.map(CHANNEL_FIELDS, 'a mapping {name, minVersion, maxVersion}');
    const cname = parseName(requireField(ch, cm, 'name'), 'a channel name');
    const twin = seen.get(cname);
    if (twin !== undefined) ch.fail(`channel "${cname}" is already listed at line ${twin.line}; list each channel once`);
    seen.set(cname, ch);
    const cr = parseRange(cm);
    if (cr.range !== undefined && range !== undefined) {
      cr.at!.fail(
        `package "${name}" already has minVersion/maxVersion (line ${rangeAt!.line}); ranges on the package and on its channels cannot be mixed: keep one of them`,
      );
    }
    if (cr.range !== undefined && full) cr.at!.fail('cannot be used with full: true (full mirrors whole channels); remove full or the range');
    channels.push(Object.freeze({ name: cname, ...(cr.range !== undefined ? { range: cr.range } : {}), source: { file: ch.file, line: ch.line } }));
  }
  if (chC?.present === true && channels.length === 0) chC.fail('must list at least one channel, or be left out for every channel');

  const sel = m.get('selectedBundles');
  const bun = m.get('bundles');
  if (sel?.present === true && bun?.present === true) {
    bun.fail('and selectedBundles are two names for the same list; keep one of them');
  }
  const bundlesC = sel?.present === true ? sel : bun?.present === true ? bun : undefined;
  const selectedBundles: string[] = [];
  for (const b of bundlesC ? bundlesC.seq('a list of bundles ({name})') : []) {
    const bm = b.map(['name'], 'a mapping {name: BUNDLE}');
    const bname = parseName(requireField(b, bm, 'name'), 'a bundle name');
    if (selectedBundles.includes(bname)) b.fail(`bundle "${bname}" is listed twice`);
    selectedBundles.push(bname);
  }
  if (bundlesC !== undefined) {
    if (selectedBundles.length === 0) bundlesC.fail('must list at least one bundle, or be left out');
    if (channels.length > 0 || range !== undefined) {
      bundlesC.fail('cannot be mixed with channels or minVersion/maxVersion: selected bundles are mirrored from every channel that has them');
    }
    if (full) bundlesC.fail('cannot be used with full: true; remove full or the selected bundles');
  }
  if (range !== undefined && full) rangeAt!.fail('cannot be used with full: true (full mirrors whole channels); remove full or the range');

  return Object.freeze({
    name,
    ...(defaultChannel !== undefined ? { defaultChannel } : {}),
    ...(range !== undefined ? { range } : {}),
    channels: Object.freeze(channels),
    selectedBundles: Object.freeze(selectedBundles),
    source: { file: p.file, line: p.line },
  });
}

const OS_ARCH = /^[a-z0-9][a-z0-9_.-]*$/;

function parsePlatforms(c: YamlCursor): Platform[] {
  const out: Platform[] = [];
  for (const item of c.seq('a list of {os, architecture}')) {
    const m = item.map(['os', 'architecture'], 'a mapping {os, architecture}');
    const os = requireField(item, m, 'os').str('an operating system (linux)');
    const architecture = requireField(item, m, 'architecture').str('an architecture (amd64, arm64, ppc64le, s390x)');
    if (!OS_ARCH.test(os)) (m.get('os') as YamlCursor).fail(`"${os}" is not an operating system name`);
    if (!OS_ARCH.test(architecture)) (m.get('architecture') as YamlCursor).fail(`"${architecture}" is not an architecture name`);
    if (out.some((p) => p.os === os && p.architecture === architecture)) item.fail(`${os}/${architecture} is listed twice`);
    out.push({ os, architecture });
  }
  if (out.length === 0) c.fail('must list at least one platform, or be left out for all');
  return out;
}
