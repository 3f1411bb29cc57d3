import { describe, expect, it } from 'vitest';
import { Reference } from '../oci/reference.js';
import { parseImageSet } from './image-set.js';
import { scopeProblem } from './trust-policy.js';
// Scope matching lives with the verifier that applies it; these cases check it on policies read from a file.
import { policyFor, scopeSpecificity } from '../verify/policy.js';

const DIGEST = `sha256:${'b'.repeat(64)}`;

describe('scopeProblem', () => {
  it.each(['quay.io', 'localhost:5000', 'quay.io/openshift-release-dev', 'quay.io/openshift-release-dev/ocp-release:4.16.0', `quay.io/a/b@${DIGEST}`, '*.example.com'])(
    'accepts %s',
    (s) => {
      expect(scopeProblem(s)).toBeUndefined();
    },
  );
  it.each([
    ['*', /only as a leading/],
    ['quay.io/*', /only as a leading/],
    ['*.', /not a valid wildcard domain/],
    ['library/ubuntu', /does not start with a registry host/],
    ['quay.io/UPPER', /is not a valid repository scope/],
  ])('refuses %s', (s, why) => {
    expect(scopeProblem(s)).toMatch(why);
  });
});

describe('policyFor', () => {
  const set = parseImageSet(
    [
      'apiVersion: airlock.dev/v1alpha1',
      'kind: ImageSet',
      'images: [quay.io/a/b:1]',
      'policies:',
      '  - scopes: [quay.io]', // 0
      '    roots: [redhat]',
      '  - scopes: [quay.io/openshift-release-dev]', // 1
      '    roots: [redhat]',
      '    transparencyLog: false',
      '  - scopes: [quay.io/openshift-release-dev/ocp-release]', // 2
      '    require: none',
      '  - scopes: ["quay.io/openshift-release-dev/ocp-release:4.16.0"]', // 3
      '    roots: [redhat]',
      '  - scopes: ["*.example.com", "*.b.example.com"]', // 4
      '    require: none',
      '',
    ].join('\n'),
    'policies.yaml',
  );
  const which = (r: string): number => {
    const ref = Reference.parse(r);
    const policies = set.policies.map((p, i) => ({ ...p, name: String(i), origin: 'archive' as const }));
    const p = policyFor(policies, { repository: ref.name, ...(ref.tag !== undefined ? { tag: ref.tag } : {}), ...(ref.digest !== undefined ? { digest: ref.digest } : {}) });
    return p === undefined ? -1 : Number(p.name);
  };

  describe('when several scopes cover a reference', () => {
    it('takes the most specific one', () => {
      expect(which('quay.io/someone/else:1')).toBe(0);
      expect(which('quay.io/openshift-release-dev/ocp-v4.0-art-dev@' + DIGEST)).toBe(1);
      expect(which('quay.io/openshift-release-dev/ocp-release:4.17.0')).toBe(2);
      expect(which('quay.io/openshift-release-dev/ocp-release:4.16.0')).toBe(3);
      expect(which('registry.a.b.example.com/x:1')).toBe(4);
    });
  });
  describe('when nothing covers it', () => {
    it('returns undefined', () => {
      expect(which('registry.redhat.io/ubi9/ubi:9.4')).toBe(-1);
      expect(which('example.com/x:1')).toBe(-1);
      expect(which('quay.io.evil.test/x:1')).toBe(-1);
    });
  });
  it('does not let a namespace scope match a longer sibling name', () => {
    expect(scopeSpecificity('quay.io/openshift-release-dev', { repository: 'quay.io/openshift-release-dev-fork/x', tag: '1' })).toBe(-1);
  });
  it('reads the policy fields', () => {
    expect(set.policies.map((p) => [p.require, p.transparencyLog, p.source.line])).toEqual([
      ['signature', true, 5],
      ['signature', false, 7],
      ['none', true, 10],
      ['signature', true, 12],
      ['none', true, 14],
    ]);
  });
});

describe('oc-mirror blockedImages patterns', () => {
  it('says patterns are not supported', () => {
    expect(() =>
      parseImageSet(
        'kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages: [{name: quay.io/a/b:1}]\n  blockedImages:\n    - name: "docker.io/library/alpine.*"\n',
        'oc.yaml',
      ),
    ).toThrow(/^oc\.yaml:6: mirror\.blockedImages\[0\]\.name: "docker\.io\/library\/alpine\.\*" is not a valid image reference .*; patterns are not supported here/);
  });
});

describe('policy identity (keyless signer)', () => {
  const base = ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'images: [quay.io/a/b:1]', 'policies:', '  - scopes: [quay.io/a]', '    roots: [redhat]'];
  const parse = (...lines: string[]) => parseImageSet([...base, ...lines, ''].join('\n'), 'p.yaml');

  it('reads issuer and subject, and keeps them in the inventory form', () => {
    const set = parse('    identity:', '      issuer: https://accounts.example.com', '      subject: builder@example.com');
    expect(set.policies[0]?.identity).toEqual({ issuer: 'https://accounts.example.com', subject: 'builder@example.com' });
    expect((set.toJSON() as { policies: unknown[] }).policies[0]).toMatchObject({ identity: { issuer: 'https://accounts.example.com', subject: 'builder@example.com' } });
  });
  it('reads a subjectRegExp', () => {
    expect(parse('    identity: {issuer: https://i.example, subjectRegExp: "https://github.com/org/.*"}').policies[0]?.identity).toEqual({
      issuer: 'https://i.example',
      subjectRegExp: 'https://github.com/org/.*',
    });
  });
  it('has none unless asked', () => {
    expect(parse().policies[0]?.identity).toBeUndefined();
  });
  it.each([
    [['    identity: {subject: a@b.c}'], /p\.yaml:7: policies\[0\]\.identity.*missing the required field "issuer"/],
    [['    identity: {issuer: x, subject: a, subjectRegExp: b}'], /give subject or subjectRegExp, not both/],
    [['    identity: {issuer: x, subjectRegExp: "("}'], /is not a valid regular expression/],
    [['    identity: {issuer: x, email: a@b.c}'], /email/],
  ])('refuses %j', (lines, why) => {
    expect(() => parse(...lines)).toThrow(why);
  });
});
