import { describe, expect, it } from 'vitest';
import { AirlockError, ExitCode, exitCodeFor } from '../errors.js';
import { isFullCatalog, operatorUniqueName, parseOperators, type OperatorsSection } from './openshift-operators.js';
import { parseYaml } from './yaml-node.js';

const DIGEST = `sha256:${'b'.repeat(64)}`;

function parse(yaml: string): OperatorsSection {
  return parseOperators(parseYaml(yaml, 'isc.yaml').map(['operators']).get('operators')!);
}

function configError(yaml: string): string {
  try {
    parse(yaml);
  } catch (e) {
    expect(e).toBeInstanceOf(AirlockError);
    expect((e as AirlockError).code).toBe('CONFIG');
    expect(exitCodeFor(e)).toBe(ExitCode.USAGE);
    return (e as AirlockError).message;
  }
  throw new Error('expected a CONFIG error');
}

const op = (body: string): string => `operators:\n- catalog: registry.redhat.io/redhat/redhat-operator-index:v4.18\n${body}`;

describe('parseOperators', () => {
  describe('when a catalog lists packages, channels and ranges', () => {
    it('reads every field into closed types', () => {
      const { operators, warnings } = parse(
        op(
          [
            '  targetCatalog: mirror/redhat-operators',
            '  targetTag: v4.18-filtered',
            '  packages:',
            '  - name: aws-load-balancer-operator',
            '    defaultChannel: stable-v1',
            '    channels:',
            '    - name: stable-v1',
            '      minVersion: 1.1.0',
            '      maxVersion: "1.2"',
            '    - name: stable-v0',
            '  - name: 3scale-operator',
            '    minVersion: v0.10.0',
            '  - name: devworkspace-operator',
            '    selectedBundles:',
            '    - name: devworkspace-operator.v0.26.0',
            '  platforms:',
            '  - {os: linux, architecture: amd64}',
            '',
          ].join('\n'),
        ),
      );
      expect(warnings).toEqual([]);
      expect(operators).toHaveLength(1);
      const o = operators[0]!;
      expect(o.catalog.toString()).toBe('registry.redhat.io/redhat/redhat-operator-index:v4.18');
      expect(o.full).toBe(false);
      expect(o.target).toEqual({ repository: 'mirror/redhat-operators', tag: 'v4.18-filtered' });
      expect(o.platforms).toEqual([{ os: 'linux', architecture: 'amd64' }]);
      expect(isFullCatalog(o)).toBe(false);
      expect(operatorUniqueName(o)).toBe('registry.redhat.io/mirror/redhat-operators:v4.18-filtered');
      const [alb, threescale, dw] = o.packages;
      expect(alb).toMatchObject({ name: 'aws-load-balancer-operator', defaultChannel: 'stable-v1', selectedBundles: [], source: { file: 'isc.yaml', line: 6 } });
      expect(alb!.channels.map((c) => [c.name, c.range?.toString()])).toEqual([
        ['stable-v1', '>=1.1.0 <=1.2'],
        ['stable-v0', undefined],
      ]);
      expect(threescale!.range?.toString()).toBe('>=v0.10.0');
      expect(dw!.selectedBundles).toEqual(['devworkspace-operator.v0.26.0']);
    });
  });

  describe('when a catalog is full with no packages', () => {
    it('is the whole catalog, nothing filtered', () => {
      const { operators } = parse(`operators:\n- catalog: quay.io/team/catalog@${DIGEST}\n  full: true\n`);
      expect(isFullCatalog(operators[0]!)).toBe(true);
      expect(operators[0]!.target).toBeUndefined();
    });
  });

  it('accepts oc-mirror 4.16 "bundles" as selectedBundles', () => {
    const { operators } = parse(op('  packages:\n  - name: a\n    bundles:\n    - name: a.v1.0.0\n'));
    expect(operators[0]!.packages[0]!.selectedBundles).toEqual(['a.v1.0.0']);
  });

  it('warns that skipDependencies has no effect', () => {
    const { warnings } = parse(op('  skipDependencies: true\n'));
    expect(warnings).toEqual(['isc.yaml:3: operators[0].skipDependencies has no effect: neither oc-mirror v2 nor airlock resolves operator dependencies; list every package you need']);
  });

  describe('refuses what oc-mirror and catalog-filter refuse, naming the field', () => {
    it.each([
      [
        'package and channel ranges together',
        '  packages:\n  - name: a\n    minVersion: 1.0.0\n    channels:\n    - name: stable\n      maxVersion: 2.0.0\n',
        /^isc\.yaml:8: operators\[0\]\.packages\[0\]\.channels\[0\]\.maxVersion: package "a" already has minVersion\/maxVersion \(line 5\); ranges on the package and on its channels cannot be mixed/,
      ],
      ['full with a package range', '  full: true\n  packages:\n  - name: a\n    maxVersion: 1.0.0\n', /^isc\.yaml:6: operators\[0\]\.packages\[0\]\.maxVersion: cannot be used with full: true/],
      [
        'full with a channel range',
        '  full: true\n  packages:\n  - name: a\n    channels:\n    - name: s\n      minVersion: 1.0.0\n',
        /^isc\.yaml:8: operators\[0\]\.packages\[0\]\.channels\[0\]\.minVersion: cannot be used with full: true/,
      ],
      [
        'full with selected bundles',
        '  full: true\n  packages:\n  - name: a\n    selectedBundles:\n    - name: a.v1\n',
        /^isc\.yaml:6: operators\[0\]\.packages\[0\]\.selectedBundles: cannot be used with full: true/,
      ],
      [
        'selected bundles with channels',
        '  packages:\n  - name: a\n    channels:\n    - name: s\n    selectedBundles:\n    - name: a.v1\n',
        /^isc\.yaml:7: operators\[0\]\.packages\[0\]\.selectedBundles: cannot be mixed with channels or minVersion\/maxVersion/,
      ],
      [
        'selected bundles with a range',
        '  packages:\n  - name: a\n    minVersion: 1.0.0\n    selectedBundles:\n    - name: a.v1\n',
        /^isc\.yaml:6: operators\[0\]\.packages\[0\]\.selectedBundles: cannot be mixed with channels or minVersion\/maxVersion/,
      ],
      ['bundles and selectedBundles together', '  packages:\n  - name: a\n    selectedBundles:\n    - name: x\n    bundles:\n    - name: y\n', /packages\[0\]\.bundles: and selectedBundles are two names/],
      ['a duplicate package', '  packages:\n  - name: a\n  - name: a\n', /^isc\.yaml:5: operators\[0\]\.packages\[1\]: package "a" is already listed at line 4/],
      ['a duplicate channel', '  packages:\n  - name: a\n    channels:\n    - name: s\n    - name: s\n', /channels\[1\]: channel "s" is already listed at line 6/],
      ['a minVersion that is not semver', '  packages:\n  - name: a\n    minVersion: latest\n', /packages\[0\]\.minVersion: "latest" must respect semantic versioning notation/],
      ['an unquoted number as version', '  packages:\n  - name: a\n    maxVersion: 1.2\n', /maxVersion: must be a version string; quote it/],
      ['min above max', '  packages:\n  - name: a\n    minVersion: 2.0.0\n    maxVersion: 1.0.0\n', /maxVersion: minVersion 2\.0\.0 is above maxVersion 1\.0\.0/],
      ['a package without a name', '  packages:\n  - defaultChannel: s\n', /operators\[0\]\.packages\[0\]\.name: is missing the required field "name"/],
      ['a channel without a name', '  packages:\n  - name: a\n    channels:\n    - minVersion: 1.0.0\n', /channels\[0\]\.name: is missing the required field "name"/],
      ['a targetCatalog with a tag', '  targetCatalog: mirror/index:v1\n', /operators\[0\]\.targetCatalog: "mirror\/index:v1" is not a repository path/],
      ['an invalid targetTag', '  targetTag: -bad\n', /operators\[0\]\.targetTag: "-bad" is not a valid tag/],
      ['targetCatalogSourceTemplate', '  targetCatalogSourceTemplate: cs.yaml\n', /targetCatalogSourceTemplate: is not supported by airlock/],
      ['an unknown field', '  package:\n  - name: a\n', /operators\[0\]\.package: unknown field \(did you mean "packages"\?\)/],
      ['a misspelt package field', '  packages:\n  - name: a\n    channel: s\n', /packages\[0\]\.channel: unknown field \(did you mean "channels"\?\)/],
    ])('%s', (_what, body, expected) => {
      expect(configError(op(body))).toMatch(expected);
    });

    it('a catalog without tag or digest', () => {
      expect(configError('operators:\n- catalog: quay.io/team/catalog\n')).toMatch(/^isc\.yaml:2: operators\[0\]\.catalog: "quay\.io\/team\/catalog" has neither a tag nor a digest/);
    });
    it('an oci:// catalog', () => {
      expect(configError('operators:\n- catalog: oci:///tmp/catalog\n')).toMatch(/operators\[0\]\.catalog: "oci:\/\/\/tmp\/catalog": catalogs on disk \(oci:\/\/\) are not supported/);
    });
    it('the same catalog twice', () => {
      const yaml = 'operators:\n- catalog: quay.io/a/b:v1\n- catalog: quay.io/a/b:v1\n  packages:\n  - name: x\n';
      expect(configError(yaml)).toMatch(/^isc\.yaml:3: operators\[1\]: catalog quay\.io\/a\/b:v1 is already listed at line 2/);
    });
    it('but the same catalog under two targets is fine', () => {
      const yaml = 'operators:\n- catalog: quay.io/a/b:v1\n- catalog: quay.io/a/b:v1\n  targetTag: v1-small\n';
      expect(parse(yaml).operators.map(operatorUniqueName)).toEqual(['quay.io/a/b:v1', 'quay.io/a/b:v1-small']);
    });
  });
});
