import { describe, expect, it } from 'vitest';
import { compareSemVer, parseLooseVersion, parseStrictSemVer, VersionRange, type SemVer } from './semver.js';

const v = (s: string): SemVer => {
  const p = parseStrictSemVer(s);
  if (!p) throw new Error(`test version ${s} is not strict semver`);
  return p;
};
const range = (min?: string, max?: string): VersionRange =>
  new VersionRange(min === undefined ? undefined : parseLooseVersion(min), max === undefined ? undefined : parseLooseVersion(max));

describe('parseStrictSemVer', () => {
  it('reads SemVer 2.0 versions with pre-release and build', () => {
    expect(v('1.2.3')).toMatchObject({ major: 1n, minor: 2n, patch: 3n, prerelease: [], build: '' });
    expect(v('0.8.4-0.1655690146.p')).toMatchObject({ prerelease: ['0', '1655690146', 'p'] });
    expect(v('1.0.0-rc.1+build.5')).toMatchObject({ prerelease: ['rc', '1'], build: 'build.5' });
  });
  it('refuses what StrictNewVersion refuses', () => {
    for (const s of ['v1.2.3', '1.2', '1', '01.2.3', '1.2.3-01', '1.2.3-', '1.2.3+', '1.2.x', '', '1.2.3.4']) {
      expect(parseStrictSemVer(s), s).toBeUndefined();
    }
  });
});

describe('parseLooseVersion', () => {
  it('accepts v, missing parts and coerces leading zeros like NewVersion', () => {
    expect(parseLooseVersion('v1.2')).toMatchObject({ version: { major: 1n, minor: 2n, patch: 0n }, minorMissing: false, patchMissing: true });
    expect(parseLooseVersion('1')).toMatchObject({ minorMissing: true, patchMissing: true });
    expect(parseLooseVersion('01.02.03')?.version).toMatchObject({ major: 1n, minor: 2n, patch: 3n });
  });
  it('refuses wildcards and garbage', () => {
    for (const s of ['1.x', '*', 'latest', '1.2.3.4', '>=1.0.0', '']) expect(parseLooseVersion(s), s).toBeUndefined();
  });
});

describe('compareSemVer', () => {
  it('orders by SemVer 2.0 precedence', () => {
    const order = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.10.0'];
    for (let i = 1; i < order.length; i++) expect(compareSemVer(v(order[i - 1]!), v(order[i]!)), `${order[i - 1]} < ${order[i]}`).toBe(-1);
    expect(compareSemVer(v('1.0.0+a'), v('1.0.0+b'))).toBe(0);
  });
});

describe('VersionRange', () => {
  describe('when neither bound has a pre-release', () => {
    it('keeps releases inside the bounds, inclusive', () => {
      const r = range('0.8.0', '0.9.0');
      expect(['0.7.9', '0.8.0', '0.8.5', '0.9.0', '0.9.1'].filter((s) => r.check(v(s)))).toEqual(['0.8.0', '0.8.5', '0.9.0']);
      expect(r.toString()).toBe('>=0.8.0 <=0.9.0');
    });
    it('never keeps a pre-release version, as Masterminds does', () => {
      expect(range('0.8.0', '0.9.0').check(v('0.8.4-0.1655690146.p'))).toBe(false);
      expect(range('0.8.0').check(v('1.0.0-rc.1'))).toBe(false);
    });
  });
  describe('when a bound has a pre-release', () => {
    it('compares pre-releases by precedence', () => {
      const r = range('0.8.0-0', '0.9.0');
      expect(r.check(v('0.8.4-0.1655690146.p'))).toBe(true);
      expect(r.check(v('0.9.0-rc.1'))).toBe(true);
      expect(r.check(v('0.7.0-rc.1'))).toBe(false);
    });
  });
  describe('when the upper bound leaves parts out', () => {
    it('treats them as any (<=1.2 is every 1.2.x)', () => {
      expect(range(undefined, '1.2').check(v('1.2.99'))).toBe(true);
      expect(range(undefined, '1.2').check(v('1.3.0'))).toBe(false);
      expect(range(undefined, '1').check(v('1.99.0'))).toBe(true);
      expect(range(undefined, '1').check(v('2.0.0'))).toBe(false);
    });
    it('fills the lower bound with zeros (>=1.2 is >=1.2.0)', () => {
      expect(range('1.2').check(v('1.2.0'))).toBe(true);
      expect(range('1.2').check(v('1.1.9'))).toBe(false);
    });
  });
  it('knows when the bounds exclude every version', () => {
    expect(range('2.0.0', '1.9.9').empty).toBe(true);
    expect(range('1.2.5', '1.2').empty).toBe(false);
    expect(range('1.3.0', '1.2').empty).toBe(true);
    expect(range('1.0.0').empty).toBe(false);
  });
});
