import { describe, expect, it } from 'vitest';
import { parseOperators } from '../../config/openshift-operators.js';
import { parseYaml } from '../../config/yaml-node.js';
import { AirlockError } from '../../errors.js';
import type { FbcBundle, FbcCatalog, FbcChannel, FbcChannelEntry } from './fbc.js';
import { filterCatalog, type FilteredCatalog } from './filter.js';
import { ChannelGraph } from './graph.js';
import { parseLooseVersion, parseStrictSemVer, VersionRange } from './semver.js';

// A small catalog with the shapes the filter rules care about:
//   alpha (default stable)  stable: 1.0.0 ← 1.1.0 ← 1.1.1, and 1.2.0 replaces 1.1.0 and skips 1.1.1
//                           fast:   1.2.0 ← 1.3.0-rc.1
//   beta  (default stable)  stable: 2.0.0 ← 2.1.0 (skipRange)   candidate: 2.1.0 ← 2.2.0
//                           deprecations: the candidate channel, bundle 2.0.0, the package
//   gamma (default preview) preview: 0.1.0
const e = (name: string, replaces?: string, skips: string[] = [], skipRange?: string): FbcChannelEntry => ({
  name,
  ...(replaces ? { replaces } : {}),
  skips,
  ...(skipRange ? { skipRange } : {}),
});
const bundle = (pkg: string, version: string): FbcBundle => ({
  package: pkg,
  name: `${pkg}.v${version}`,
  version,
  image: `quay.io/example/${pkg}-bundle@sha256:${version.replace(/[^0-9]/g, '').padEnd(64, '0')}`,
  relatedImages: [{ name: 'operator', image: `quay.io/example/${pkg}-operator:v${version}` }],
});
const CATALOG: FbcCatalog = {
  packages: [
    { name: 'alpha', defaultChannel: 'stable' },
    { name: 'beta', defaultChannel: 'stable' },
    { name: 'gamma', defaultChannel: 'preview' },
  ],
  channels: [
    { package: 'alpha', name: 'stable', entries: [e('alpha.v1.0.0'), e('alpha.v1.1.0', 'alpha.v1.0.0'), e('alpha.v1.1.1', 'alpha.v1.1.0'), e('alpha.v1.2.0', 'alpha.v1.1.0', ['alpha.v1.1.1'])] },
    { package: 'alpha', name: 'fast', entries: [e('alpha.v1.2.0'), e('alpha.v1.3.0-rc.1', 'alpha.v1.2.0')] },
    { package: 'beta', name: 'stable', entries: [e('beta.v2.0.0'), e('beta.v2.1.0', 'beta.v2.0.0', [], '>=1.0.0 <2.1.0')] },
    { package: 'beta', name: 'candidate', entries: [e('beta.v2.1.0'), e('beta.v2.2.0', 'beta.v2.1.0')] },
    { package: 'gamma', name: 'preview', entries: [e('gamma.v0.1.0')] },
  ],
  bundles: [
    ...['1.0.0', '1.1.0', '1.1.1', '1.2.0', '1.3.0-rc.1'].map((v) => bundle('alpha', v)),
    ...['2.0.0', '2.1.0', '2.2.0'].map((v) => bundle('beta', v)),
    bundle('gamma', '0.1.0'),
  ],
  deprecations: [
    {
      package: 'beta',
      entries: [
        { schema: 'olm.channel', name: 'candidate', message: 'candidate is retired' },
        { schema: 'olm.bundle', name: 'beta.v2.0.0', message: 'has a CVE' },
        { schema: 'olm.package', name: '', message: 'beta is deprecated; use gamma' },
      ],
    },
  ],
  others: [
    { schema: 'com.example.note', package: 'gamma', name: 'n1' },
    { schema: 'com.example.index-note', package: '', name: 'n0' },
  ],
};

/** Filter CATALOG with the `operators[0]` of an ImageSetConfiguration fragment. */
function run(body: string, catalog: FbcCatalog = CATALOG): FilteredCatalog {
  const yaml = `operators:\n- catalog: quay.io/example/catalog:v1\n${body}`;
  const op = parseOperators(parseYaml(yaml, 'isc.yaml').map(['operators']).get('operators')!).operators[0]!;
  return filterCatalog(catalog, op);
}
const names = (r: FilteredCatalog): string[] => r.bundles.map((b) => b.name);
const channels = (r: FilteredCatalog): Record<string, string[]> =>
  Object.fromEntries(r.channels.map((c) => [`${c.package}/${c.name}`, c.entries.map((x) => x.name)]));

function filterError(body: string, catalog: FbcCatalog = CATALOG): AirlockError {
  try {
    run(body, catalog);
  } catch (err) {
    expect(err).toBeInstanceOf(AirlockError);
    return err as AirlockError;
  }
  throw new Error('expected a filter error');
}

describe('ChannelGraph', () => {
  it('finds the head from replaces and skips, ignoring skipRange', () => {
    expect(ChannelGraph.of(CATALOG.channels[0]!).head).toBe('alpha.v1.2.0');
    expect(ChannelGraph.of(CATALOG.channels[2]!).head).toBe('beta.v2.1.0');
  });
  it.each([
    ['several heads', [e('a.v1'), e('a.v2')], /multiple channel heads found: a\.v1, a\.v2/],
    ['a loop with no head', [e('a.v1', 'a.v2'), e('a.v2', 'a.v1')], /no channel head found/],
    ['a self-replacement', [e('a.v1', 'a.v1')], /replaces itself/],
    ['a duplicate entry', [e('a.v1'), e('a.v1')], /duplicate channel entry "a\.v1"/],
  ])('refuses %s', (_w, entries, msg) => {
    const ch: FbcChannel = { package: 'a', name: 'stable', entries };
    expect(() => ChannelGraph.of(ch)).toThrow(msg);
  });
  it('detects a cycle below the head', () => {
    const ch: FbcChannel = { package: 'a', name: 's', entries: [e('a.v3', 'a.v2'), e('a.v2', 'a.v1'), e('a.v1', 'a.v2')] };
    expect(() => ChannelGraph.of(ch)).toThrow(/cycle/);
  });
  it('keeps the chain between the range head and tail (catalog-filter filterByVersionRange)', () => {
    const g = ChannelGraph.of(CATALOG.channels[0]!);
    const v = (n: string) => parseStrictSemVer(n.replace(/^alpha\.v/, ''));
    const r = new VersionRange(parseLooseVersion('1.1.0'), parseLooseVersion('1.1.1'));
    const { keep, outside } = g.keepInRange(r, v);
    expect([...keep].sort()).toEqual(['alpha.v1.1.0', 'alpha.v1.1.1', 'alpha.v1.2.0']);
    expect(outside).toEqual(['alpha.v1.2.0']);
  });
});

describe('filterCatalog', () => {
  describe('when no packages are listed', () => {
    it('keeps the head of every channel of every package', () => {
      const r = run('');
      expect(r.whole).toBe(false);
      expect(names(r)).toEqual(['alpha.v1.2.0', 'alpha.v1.3.0-rc.1', 'beta.v2.1.0', 'beta.v2.2.0', 'gamma.v0.1.0']);
      expect(channels(r)).toEqual({
        'alpha/stable': ['alpha.v1.2.0'],
        'alpha/fast': ['alpha.v1.3.0-rc.1'],
        'beta/stable': ['beta.v2.1.0'],
        'beta/candidate': ['beta.v2.2.0'],
        'gamma/preview': ['gamma.v0.1.0'],
      });
      // the candidate channel stays, bundle 2.0.0 is gone: its deprecation entry goes with it
      expect(r.deprecations).toEqual([
        {
          package: 'beta',
          entries: [
            { schema: 'olm.channel', name: 'candidate', message: 'candidate is retired' },
            { schema: 'olm.package', name: '', message: 'beta is deprecated; use gamma' },
          ],
        },
      ]);
      expect(r.others).toHaveLength(2);
    });
    it('with full: true, is the whole catalog untouched', () => {
      const r = run('  full: true\n');
      expect(r.whole).toBe(true);
      expect(names(r)).toHaveLength(CATALOG.bundles.length);
      expect(r.channels).toBe(CATALOG.channels);
    });
    it('fails on a channel with several heads anywhere in the catalog', () => {
      const broken: FbcCatalog = {
        ...CATALOG,
        packages: [...CATALOG.packages, { name: 'broken', defaultChannel: 'stable' }],
        channels: [...CATALOG.channels, { package: 'broken', name: 'stable', entries: [e('broken.v1'), e('broken.v2')] }],
      };
      const err = filterError('', broken);
      expect(err.code).toBe('MANIFEST_INVALID');
      expect(err.detail?.catalog).toBe('graph');
      expect(err.message).toBe('package "broken" channel "stable": multiple channel heads found: broken.v1, broken.v2');
    });
  });

  describe('when a package is listed without channels', () => {
    it('keeps the head of each of its channels (catalog-filter fdd3d65), and only that package', () => {
      const r = run('  packages:\n  - name: alpha\n');
      expect(names(r)).toEqual(['alpha.v1.2.0', 'alpha.v1.3.0-rc.1']);
      expect(r.packages.map((p) => p.name)).toEqual(['alpha']);
      expect(r.deprecations).toEqual([]);
      expect(r.others.map((o) => o.name)).toEqual(['n0']);
    });
  });

  describe('when a package lists channels', () => {
    it('keeps the head of each listed channel', () => {
      const r = run('  packages:\n  - name: beta\n    channels:\n    - name: stable\n');
      expect(channels(r)).toEqual({ 'beta/stable': ['beta.v2.1.0'] });
      expect(names(r)).toEqual(['beta.v2.1.0']);
      expect(r.deprecations).toEqual([{ package: 'beta', entries: [{ schema: 'olm.package', name: '', message: 'beta is deprecated; use gamma' }] }]);
    });
    it('applies a channel range to that channel only', () => {
      const r = run('  packages:\n  - name: alpha\n    channels:\n    - name: stable\n      minVersion: 1.0.0\n      maxVersion: 1.1.0\n    - name: fast\n');
      expect(channels(r)).toEqual({ 'alpha/stable': ['alpha.v1.0.0', 'alpha.v1.1.0'], 'alpha/fast': ['alpha.v1.3.0-rc.1'] });
      expect(names(r)).toEqual(['alpha.v1.0.0', 'alpha.v1.1.0', 'alpha.v1.3.0-rc.1']);
    });
    it('keeps an out-of-range chain bundle so the channel keeps one head, and says so', () => {
      const r = run('  packages:\n  - name: alpha\n    channels:\n    - name: stable\n      minVersion: 1.1.0\n      maxVersion: 1.1.1\n');
      expect(names(r)).toEqual(['alpha.v1.1.0', 'alpha.v1.1.1', 'alpha.v1.2.0']);
      expect(r.notes).toEqual(['package "alpha" channel "stable": alpha.v1.2.0 is outside the range >=1.1.0 <=1.1.1 but is kept so that the channel keeps one head']);
    });
  });

  describe('when a package has a package-level range', () => {
    it('applies it to every channel and drops the channels it empties', () => {
      const r = run('  packages:\n  - name: alpha\n    maxVersion: 1.1.0\n');
      expect(channels(r)).toEqual({ 'alpha/stable': ['alpha.v1.0.0', 'alpha.v1.1.0'] });
      expect(names(r)).toEqual(['alpha.v1.0.0', 'alpha.v1.1.0']);
    });
    it('leaves pre-releases out unless a bound has one (Masterminds)', () => {
      expect(channels(run('  packages:\n  - name: alpha\n    minVersion: 1.2.0\n'))).toEqual({ 'alpha/stable': ['alpha.v1.2.0'], 'alpha/fast': ['alpha.v1.2.0'] });
      expect(channels(run('  packages:\n  - name: alpha\n    minVersion: 1.2.0-0\n'))).toEqual({ 'alpha/stable': ['alpha.v1.2.0'], 'alpha/fast': ['alpha.v1.2.0', 'alpha.v1.3.0-rc.1'] });
    });
    it('fails when it empties the default channel, unless defaultChannel names a survivor', () => {
      const err = filterError('  packages:\n  - name: alpha\n    minVersion: 1.3.0-0\n');
      expect(err.code).toBe('CONFIG');
      expect(err.message).toBe('isc.yaml:4: package "alpha": the filter removes its default channel "stable"; set defaultChannel to one of the channels left (fast)');
      const r = run('  packages:\n  - name: alpha\n    minVersion: 1.3.0-0\n    defaultChannel: fast\n');
      expect(r.packages).toEqual([{ name: 'alpha', defaultChannel: 'fast' }]);
      expect(names(r)).toEqual(['alpha.v1.3.0-rc.1']);
    });
  });

  describe('when full: true lists packages', () => {
    it('keeps every entry of the kept channels', () => {
      expect(names(run('  full: true\n  packages:\n  - name: alpha\n'))).toEqual(['alpha.v1.0.0', 'alpha.v1.1.0', 'alpha.v1.1.1', 'alpha.v1.2.0', 'alpha.v1.3.0-rc.1']);
      const r = run('  full: true\n  packages:\n  - name: beta\n    channels:\n    - name: stable\n');
      expect(names(r)).toEqual(['beta.v2.0.0', 'beta.v2.1.0']);
      expect(r.deprecations[0]!.entries.map((x) => x.name)).toEqual(['beta.v2.0.0', '']);
    });
  });

  describe('when a package selects bundles', () => {
    it('keeps exactly those, in every channel that has them', () => {
      const r = run('  packages:\n  - name: alpha\n    selectedBundles:\n    - name: alpha.v1.1.0\n    - name: alpha.v1.2.0\n');
      expect(channels(r)).toEqual({ 'alpha/stable': ['alpha.v1.1.0', 'alpha.v1.2.0'], 'alpha/fast': ['alpha.v1.2.0'] });
      expect(names(r)).toEqual(['alpha.v1.1.0', 'alpha.v1.2.0']);
    });
    it('fails when the selection leaves a channel with several heads', () => {
      const err = filterError('  packages:\n  - name: alpha\n    selectedBundles:\n    - name: alpha.v1.0.0\n    - name: alpha.v1.2.0\n');
      expect(err.message).toBe(
        'isc.yaml:4: the selected bundles break package "alpha" channel "stable": multiple channel heads found: alpha.v1.0.0, alpha.v1.2.0; select bundles that follow each other in the channel',
      );
    });
    it('drops a channel it empties; the default channel must then be set', () => {
      expect(filterError('  packages:\n  - name: alpha\n    selectedBundles:\n    - name: alpha.v1.3.0-rc.1\n').message).toMatch(/removes its default channel "stable"/);
      const r = run('  packages:\n  - name: alpha\n    defaultChannel: fast\n    selectedBundles:\n    - name: alpha.v1.3.0-rc.1\n');
      expect(channels(r)).toEqual({ 'alpha/fast': ['alpha.v1.3.0-rc.1'] });
    });
  });

  describe('default channel handling', () => {
    it('fails when the listed channels leave out the default channel', () => {
      const err = filterError('  packages:\n  - name: beta\n    channels:\n    - name: candidate\n');
      expect(err.message).toBe('isc.yaml:4: package "beta": the filter removes its default channel "stable"; set defaultChannel to one of the channels left (candidate)');
      expect(err.detail).toMatchObject({ catalog: 'filter', package: 'beta', channel: 'stable' });
    });
    it('takes a defaultChannel that survives, and refuses one that does not', () => {
      expect(run('  packages:\n  - name: beta\n    defaultChannel: candidate\n    channels:\n    - name: candidate\n').packages).toEqual([{ name: 'beta', defaultChannel: 'candidate' }]);
      expect(filterError('  packages:\n  - name: beta\n    defaultChannel: stable\n    channels:\n    - name: candidate\n').message).toBe(
        'isc.yaml:4: package "beta": the defaultChannel "stable" is not among the channels left after filtering (candidate)',
      );
    });
  });

  describe('names the catalog does not have', () => {
    it.each([
      ['a package', '  packages:\n  - name: alph\n', 'isc.yaml:4: package "alph" is not in the catalog (did you mean "alpha"?)'],
      ['a channel', '  packages:\n  - name: alpha\n    channels:\n    - name: stabel\n', 'isc.yaml:6: package "alpha" has no channel "stabel" (did you mean "stable"?); its channels: fast, stable'],
      ['a bundle', '  packages:\n  - name: alpha\n    selectedBundles:\n    - name: alpha.v1.2.1\n', 'isc.yaml:4: package "alpha" has no bundle "alpha.v1.2.1" in any channel (did you mean "alpha.v1.1.1"?)'],
    ])('refuses %s', (_w, body, msg) => {
      const err = filterError(body);
      expect(err.code).toBe('CONFIG');
      expect(err.message).toBe(msg);
    });
  });
});
