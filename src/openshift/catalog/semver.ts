/**
 * Semantic versions as the operator catalog filter compares them.
 *
 * oc-mirror v2 filters catalogs through sherine-k/catalog-filter, which uses
 * Masterminds/semver v3 (oc-mirror's go.mod resolves v3.5). Three behaviours of
 * that library decide which bundles a `minVersion`/`maxVersion` range keeps, and
 * are reproduced here on purpose:
 *
 * - a bundle's version (its `olm.package` property) must be a *strict* SemVer 2.0
 *   version (`StrictNewVersion`): `1.2.3`, `1.2.3-rc.1+build`; no `v`, no missing
 *   parts, no leading zeros;
 * - the range's bounds are read leniently (`NewVersion`): `v1.2`, `1.2` and `1` are
 *   allowed, the missing parts are 0 (for `>=`) or "any" (for `<=`: `<=1.2` means
 *   every 1.2.x and below);
 * - a version with a pre-release (`0.8.4-0.1655690146.p`, common in Red Hat
 *   catalogs) matches the range only when one of the bounds has a pre-release
 *   itself: `>=0.8.0 <=0.9.0` does *not* keep `0.8.4-0.1655690146.p`.
 *   (Masterminds ≥ 3.4: the pre-release opt-in applies to the whole AND group.)
 *
 * Precedence is SemVer 2.0 §11: numeric identifiers compare numerically, alphanumeric
 * ones lexically (ASCII), numeric < alphanumeric, a longer identifier list wins on a
 * common prefix, and a version without pre-release is above any of its pre-releases;
 * build metadata is ignored.
 */

export interface SemVer {
  readonly major: bigint;
  readonly minor: bigint;
  readonly patch: bigint;
  /** pre-release identifiers; empty when there is none */
  readonly prerelease: readonly string[];
  readonly build: string;
  /** the text it was parsed from */
  readonly raw: string;
}

const NUM = /^(0|[1-9][0-9]*)$/;
const PRE_ID = /^(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)$/;
const BUILD_ID = /^[0-9A-Za-z-]+$/;

/** SemVer 2.0, strictly: what a bundle's version must be. Undefined when it is not. */
export function parseStrictSemVer(s: string): SemVer | undefined {
  const plus = s.indexOf('+');
  const build = plus >= 0 ? s.slice(plus + 1) : '';
  const rest = plus >= 0 ? s.slice(0, plus) : s;
  if (plus >= 0 && !build.split('.').every((id) => BUILD_ID.test(id))) return undefined;
  const dash = rest.indexOf('-');
  const core = dash >= 0 ? rest.slice(0, dash) : rest;
  const pre = dash >= 0 ? rest.slice(dash + 1).split('.') : [];
  if (dash >= 0 && !pre.every((id) => PRE_ID.test(id))) return undefined;
  const parts = core.split('.');
  if (parts.length !== 3 || !parts.every((p) => NUM.test(p))) return undefined;
  return { major: BigInt(parts[0]!), minor: BigInt(parts[1]!), patch: BigInt(parts[2]!), prerelease: pre, build, raw: s };
}

/** A range bound as oc-mirror validates `minVersion`/`maxVersion` (Masterminds NewVersion). */
export interface LooseVersion {
  readonly version: SemVer;
  /** which parts were left out (`1.2` → patch; `1` → minor and patch) */
  readonly minorMissing: boolean;
  readonly patchMissing: boolean;
}

const LOOSE =
  /^v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-((?:[0-9A-Za-z-]+)(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

/**
 * `v1.2.3`, `1.2`, `1`, `1.2.3-rc.1+b`: Masterminds' NewVersion, which also coerces
 * leading zeros in the numeric parts. Undefined when the text is not a version.
 */
export function parseLooseVersion(s: string): LooseVersion | undefined {
  const m = LOOSE.exec(s);
  if (!m) return undefined;
  const pre = m[4] !== undefined ? m[4].split('.') : [];
  // NewVersion validates the pre-release like StrictNewVersion does (no leading zeros in numeric ids).
  if (!pre.every((id) => PRE_ID.test(id))) return undefined;
  return {
    version: {
      major: BigInt(m[1]!),
      minor: BigInt(m[2] ?? '0'),
      patch: BigInt(m[3] ?? '0'),
      prerelease: pre,
      build: m[5] ?? '',
      raw: s,
    },
    minorMissing: m[2] === undefined,
    patchMissing: m[2] === undefined || m[3] === undefined,
  };
}

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparePrerelease(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 && b.length === 0) return 0;
  if (a.length === 0) return 1;
  if (b.length === 0) return -1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    const xn = /^[0-9]+$/.test(x);
    const yn = /^[0-9]+$/.test(y);
    if (xn && yn) return cmpBig(BigInt(x), BigInt(y));
    if (xn) return -1;
    if (yn) return 1;
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** SemVer 2.0 precedence; build metadata ignored. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  return cmpBig(a.major, b.major) || cmpBig(a.minor, b.minor) || cmpBig(a.patch, b.patch) || comparePrerelease(a.prerelease, b.prerelease);
}

/**
 * The range oc-mirror builds from `minVersion` and `maxVersion`: `>=min <=max`
 * (either side optional). `check` answers like Masterminds' `Constraints.Check`.
 */
export class VersionRange {
  readonly min: LooseVersion | undefined;
  readonly max: LooseVersion | undefined;

  constructor(min: LooseVersion | undefined, max: LooseVersion | undefined) {
    if (min === undefined && max === undefined) throw new Error('VersionRange needs a bound');
    this.min = min;
    this.max = max;
  }

  /** The constraint string oc-mirror hands to catalog-filter, for messages. */
  toString(): string {
    return [this.min ? `>=${this.min.version.raw}` : '', this.max ? `<=${this.max.version.raw}` : ''].filter((s) => s !== '').join(' ');
  }

  check(v: SemVer): boolean {
    const includePre = (this.min?.version.prerelease.length ?? 0) > 0 || (this.max?.version.prerelease.length ?? 0) > 0;
    if (v.prerelease.length > 0 && !includePre) return false;
    if (this.min && compareSemVer(v, this.min.version) < 0) return false;
    return this.#withinMax(v);
  }

  #withinMax(v: SemVer): boolean {
    const m = this.max;
    if (!m) return true;
    if (!m.minorMissing && !m.patchMissing) return compareSemVer(v, m.version) <= 0;
    // Masterminds' "dirty" <=: `<=1.2` is every 1.2.x and below, `<=1` every 1.x.y and below.
    if (v.major > m.version.major) return false;
    if (v.major === m.version.major && v.minor > m.version.minor && !m.minorMissing) return false;
    return true;
  }

  /** true when no version can satisfy the range: the lower bound is already above the upper one */
  get empty(): boolean {
    return this.min !== undefined && this.max !== undefined && !this.#withinMax(this.min.version);
  }
}
