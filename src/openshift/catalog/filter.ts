import type { OperatorCatalogConfig, OperatorPackageConfig } from '../../config/openshift-operators.js';
import { didYouMean } from '../../config/yaml-node.js';
import { catalogError } from './errors.js';
import type { FbcBundle, FbcCatalog, FbcChannel, FbcDeprecation, FbcOther, FbcPackage } from './fbc.js';
import { SCHEMA_BUNDLE, SCHEMA_CHANNEL } from './fbc.js';
import { ChannelGraph } from './graph.js';
import { parseStrictSemVer, type SemVer, type VersionRange } from './semver.js';

/**
 * Filter a catalog as oc-mirror v2 does through catalog-filter v0.0.5 (mirror-config
 * v1alpha1 FilterCatalog), per channel:
 *
 * - no packages listed: every package, every channel; `full: true` keeps whole channels
 *   (and oc-mirror then mirrors the catalog as is), otherwise each channel's head;
 * - a package listed without channels: all its channels (the head of each, since
 *   catalog-filter fdd3d65, OCPBUGS-43731; before that it was the default channel's head);
 * - a package with channels: only those channels;
 * - a range (package-level, else the channel's own): the entries between the range's
 *   new head and tail on the replaces chain (see ChannelGraph.keepInRange); a channel
 *   left empty is dropped;
 * - `full: true`: every entry of the kept channels;
 * - selected bundles: every channel of the package keeps just those entries; a channel
 *   left empty is dropped, one left with several heads is an error;
 * - otherwise: the channel's head (computed from replaces/skips as opm does);
 * - the bundles kept are those the channels kept; deprecations are kept for what stays.
 *
 * Default channel: a `defaultChannel` in the image-set replaces the catalog's; it must
 * be a channel that survives the filter. Without it, the catalog's default channel
 * must survive, or it is an error that asks for one.
 *
 * Where airlock is stricter or more careful than catalog-filter (docs/openshift-catalogs.md):
 * a package, channel or selected bundle the catalog does not have is an error (catalog-filter
 * silently keeps nothing for it); the default channel is checked after empty channels
 * are dropped (catalog-filter checks before, so it can leave a default channel that no
 * longer exists, and refuses an emptied original default even when a new one is set);
 * deprecation entries of dropped channels are removed (opm refuses to serve them).
 */
export interface FilteredCatalog {
  /** true when nothing was filtered: `full: true` and no packages (oc-mirror's isFullCatalog) */
  readonly whole: boolean;
  readonly packages: readonly FbcPackage[];
  readonly channels: readonly FbcChannel[];
  /** the selected bundles, sorted by package then name */
  readonly bundles: readonly FbcBundle[];
  readonly deprecations: readonly FbcDeprecation[];
  readonly others: readonly FbcOther[];
  /** things the user should know (bundles kept outside a range to keep a channel connected) */
  readonly notes: readonly string[];
}

/** The part of an `operators[]` entry the filter reads. */
export type FilterRequest = Pick<OperatorCatalogConfig, 'full' | 'packages'>;

const key = (pkg: string, name: string): string => `${pkg}\0${name}`;

function filterFail(message: string, detail: Record<string, unknown> = {}): never {
  throw catalogError('filter', message, detail);
}

function where(p: OperatorPackageConfig): string {
  return p.source.file !== undefined ? `${p.source.file}:${p.source.line ?? '?'}: ` : '';
}

function suggest(name: string, known: Iterable<string>): string {
  const hint = didYouMean(name, [...known]);
  return hint !== undefined ? ` (did you mean "${hint}"?)` : '';
}

export function filterCatalog(catalog: FbcCatalog, req: FilterRequest): FilteredCatalog {
  if (req.full && req.packages.length === 0) {
    return {
      whole: true,
      packages: catalog.packages,
      channels: catalog.channels,
      bundles: sortBundles(catalog.bundles),
      deprecations: catalog.deprecations,
      others: catalog.others,
      notes: [],
    };
  }
  const cfg = new Map(req.packages.map((p) => [p.name, p]));
  const packagesByName = new Map(catalog.packages.map((p) => [p.name, p]));
  const channelsOf = new Map<string, FbcChannel[]>();
  for (const c of catalog.channels) {
    const list = channelsOf.get(c.package) ?? [];
    list.push(c);
    channelsOf.set(c.package, list);
  }
  const bundleByKey = new Map(catalog.bundles.map((b) => [key(b.package, b.name), b]));

  // What the image-set names must exist in the catalog.
  for (const p of req.packages) {
    if (!packagesByName.has(p.name)) {
      filterFail(`${where(p)}package "${p.name}" is not in the catalog${suggest(p.name, packagesByName.keys())}`, { package: p.name });
    }
    const chans = new Set((channelsOf.get(p.name) ?? []).map((c) => c.name));
    for (const c of p.channels) {
      if (!chans.has(c.name)) {
        filterFail(`${c.source.file !== undefined ? `${c.source.file}:${c.source.line ?? '?'}: ` : ''}package "${p.name}" has no channel "${c.name}"${suggest(c.name, chans)}; its channels: ${[...chans].sort().join(', ')}`, {
          package: p.name,
          channel: c.name,
        });
      }
    }
    const inEntries = new Set((channelsOf.get(p.name) ?? []).flatMap((c) => c.entries.map((e) => e.name)));
    for (const b of p.selectedBundles) {
      if (!inEntries.has(b)) {
        const names = catalog.bundles.filter((x) => x.package === p.name).map((x) => x.name);
        filterFail(`${where(p)}package "${p.name}" has no bundle "${b}" in any channel${suggest(b, names)}`, { package: p.name, bundle: b });
      }
    }
  }

  const inScope = (pkg: string): boolean => cfg.size === 0 || cfg.has(pkg);
  const notes: string[] = [];
  const keep = new Map<string, Set<string>>();
  const keepOf = (pkg: string): Set<string> => {
    let s = keep.get(pkg);
    if (s === undefined) keep.set(pkg, (s = new Set()));
    return s;
  };
  const versions = new Map<string, SemVer | undefined>();
  const versionOf = (pkg: string, name: string): SemVer | undefined => {
    const k = key(pkg, name);
    if (versions.has(k)) return versions.get(k);
    const raw = bundleByKey.get(k)?.version;
    const v = raw === undefined ? undefined : parseStrictSemVer(raw);
    versions.set(k, v);
    return v;
  };

  const channels: FbcChannel[] = [];
  for (const ch of catalog.channels) {
    if (!inScope(ch.package)) continue;
    const pc = cfg.get(ch.package);
    const chc = pc?.channels.find((c) => c.name === ch.name);
    if (pc !== undefined && pc.channels.length > 0 && chc === undefined) continue;
    const range: VersionRange | undefined = chc?.range ?? pc?.range;
    const at = `package "${ch.package}" channel "${ch.name}"`;
    if (req.full && range !== undefined) filterFail(`${at}: full: true cannot be mixed with a version range`);
    if (pc !== undefined && pc.selectedBundles.length > 0) {
      if (req.full) filterFail(`${at}: full: true cannot be mixed with selected bundles`);
      const selected = new Set(pc.selectedBundles);
      for (const b of pc.selectedBundles) keepOf(ch.package).add(b);
      const entries = ch.entries.filter((e) => selected.has(e.name));
      if (entries.length === 0) continue; // emptied: dropped (the default channel is checked below)
      const kept = { ...ch, entries };
      try {
        ChannelGraph.of(kept);
      } catch (e) {
        filterFail(`${where(pc)}the selected bundles break ${at}: ${(e as Error).message.replace(/^package "[^"]*" channel "[^"]*": /, '')}; select bundles that follow each other in the channel`, {
          package: ch.package,
          channel: ch.name,
        });
      }
      channels.push(kept);
    } else if (req.full) {
      for (const e of ch.entries) keepOf(ch.package).add(e.name);
      channels.push(ch);
    } else if (range !== undefined) {
      const g = ChannelGraph.of(ch);
      const { keep: k, outside } = g.keepInRange(range, (n) => versionOf(ch.package, n));
      for (const n of k) keepOf(ch.package).add(n);
      const entries = ch.entries.filter((e) => k.has(e.name));
      for (const n of outside) {
        if (ch.entries.some((e) => e.name === n)) notes.push(`${at}: ${n} is outside the range ${range.toString()} but is kept so that the channel keeps one head`);
      }
      if (entries.length === 0) continue; // emptied: dropped
      channels.push({ ...ch, entries });
    } else {
      const g = ChannelGraph.of(ch);
      keepOf(ch.package).add(g.head);
      channels.push({ ...ch, entries: ch.entries.filter((e) => e.name === g.head) });
    }
  }

  const kept = new Set(channels.map((c) => key(c.package, c.name)));
  const packages: FbcPackage[] = [];
  for (const p of catalog.packages) {
    if (!inScope(p.name)) continue;
    const pc = cfg.get(p.name);
    const survivors = channels.filter((c) => c.package === p.name).map((c) => c.name);
    if (pc?.defaultChannel !== undefined) {
      if (!kept.has(key(p.name, pc.defaultChannel))) {
        filterFail(
          `${where(pc)}package "${p.name}": the defaultChannel "${pc.defaultChannel}" is not among the channels left after filtering (${survivors.join(', ') || 'none'})`,
          { package: p.name, channel: pc.defaultChannel },
        );
      }
      packages.push({ ...p, defaultChannel: pc.defaultChannel });
      continue;
    }
    if (p.defaultChannel !== '' && !kept.has(key(p.name, p.defaultChannel))) {
      filterFail(
        `${pc ? where(pc) : ''}package "${p.name}": the filter removes its default channel "${p.defaultChannel}"; set defaultChannel to one of the channels left (${survivors.join(', ') || 'none'})${survivors.length === 0 ? ', or widen the filter' : ''}`,
        { package: p.name, channel: p.defaultChannel },
      );
    }
    packages.push(p);
  }

  const bundles = catalog.bundles.filter((b) => keep.get(b.package)?.has(b.name) === true);
  const keptBundles = new Set(bundles.map((b) => key(b.package, b.name)));
  const deprecations: FbcDeprecation[] = [];
  for (const d of catalog.deprecations) {
    if (!inScope(d.package)) continue;
    const entries = d.entries.filter((e) => {
      if (e.schema === SCHEMA_BUNDLE) return keptBundles.has(key(d.package, e.name));
      if (e.schema === SCHEMA_CHANNEL) return kept.has(key(d.package, e.name));
      return true;
    });
    if (entries.length > 0) deprecations.push({ ...d, entries });
  }
  const others = catalog.others.filter((o) => o.package === '' || inScope(o.package));
  return { whole: false, packages, channels, bundles: sortBundles(bundles), deprecations, others, notes };
}

function sortBundles(b: readonly FbcBundle[]): FbcBundle[] {
  return [...b].sort((x, y) => (x.package < y.package ? -1 : x.package > y.package ? 1 : x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}
