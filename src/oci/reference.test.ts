import { describe, expect, it } from 'vitest';
import { isAirlockError } from '../errors.js';
import { Reference, registryEndpointHost } from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isAirlockError(e) ? e.code : 'not-airlock';
  }
  return undefined;
}

describe('Reference', () => {
  describe('when parsing Docker Hub short names', () => {
    it('adds docker.io and library/ for a single component', () => {
      const r = Reference.parse('ubuntu');
      expect([r.registry, r.repository, r.tag, r.digest]).toEqual(['docker.io', 'library/ubuntu', undefined, undefined]);
      expect(r.toString()).toBe('docker.io/library/ubuntu');
    });
    it('adds docker.io but not library/ for a namespaced name', () => {
      const r = Reference.parse('bitnami/redis:7.2');
      expect([r.registry, r.repository, r.tag]).toEqual(['docker.io', 'bitnami/redis', '7.2']);
    });
    it('folds index.docker.io and registry-1.docker.io into docker.io', () => {
      expect(Reference.parse('index.docker.io/ubuntu').name).toBe('docker.io/library/ubuntu');
      expect(Reference.parse('registry-1.docker.io/library/ubuntu:22.04').toString()).toBe('docker.io/library/ubuntu:22.04');
      expect(registryEndpointHost('docker.io')).toBe('registry-1.docker.io');
      expect(registryEndpointHost('quay.io')).toBe('quay.io');
    });
  });

  describe('when the first component is a host', () => {
    it('recognises dots, ports and localhost', () => {
      expect(Reference.parse('quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64').registry).toBe('quay.io');
      const p = Reference.parse('127.0.0.1:5000/a/b:v1');
      expect([p.registry, p.repository, p.tag]).toEqual(['127.0.0.1:5000', 'a/b', 'v1']);
      const l = Reference.parse('localhost/app');
      expect([l.registry, l.repository]).toEqual(['localhost', 'app']);
      const lp = Reference.parse('localhost:5000/app');
      expect([lp.registry, lp.repository, lp.tag]).toEqual(['localhost:5000', 'app', undefined]);
    });
  });

  describe('when a tag and/or digest is given', () => {
    it('keeps both, and the digest is the target', () => {
      const r = Reference.parse(`quay.io/a/b:v1@${D}`);
      expect([r.tag, r.digest, r.target]).toEqual(['v1', D, D]);
      expect(r.toString()).toBe(`quay.io/a/b:v1@${D}`);
    });
    it('parses a digest-only reference with a port in the host', () => {
      const r = Reference.parse(`127.0.0.1:5000/a@${D}`);
      expect([r.registry, r.repository, r.tag, r.digest]).toEqual(['127.0.0.1:5000', 'a', undefined, D]);
    });
    it('targets the tag when there is no digest', () => {
      expect(Reference.parse('quay.io/a/b:v1').target).toBe('v1');
      expect(Reference.parse('quay.io/a/b').target).toBeUndefined();
    });
  });

  describe('when the input is invalid', () => {
    it.each([
      ['', 'empty'],
      ['quay.io/A/b', 'upper-case repository'],
      ['quay.io/a/b:-bad', 'tag starting with -'],
      [`quay.io/a/b:${'t'.repeat(129)}`, 'tag over 128'],
      ['quay.io/a/b@sha256:1234', 'short digest'],
      ['quay.io/a/b@md5:' + 'a'.repeat(32), 'unknown algorithm'],
      ['quay.io/a//b', 'empty component'],
      ['quay.io/a/b_-c', 'bad separator'],
    ])('refuses %j (%s) with code REFERENCE', (input) => {
      expect(code(() => Reference.parse(input))).toBe('REFERENCE');
    });
    it('refuses a repository over 255 characters', () => {
      expect(code(() => Reference.parse(`quay.io/${'a'.repeat(256)}`))).toBe('REFERENCE');
    });
  });

  describe('as a value', () => {
    it('is frozen, and with* return new values', () => {
      const r = Reference.parse('quay.io/a/b:v1');
      expect(Object.isFrozen(r)).toBe(true);
      const d = r.withDigest(D as never);
      expect(d).not.toBe(r);
      expect(r.digest).toBeUndefined();
      expect(d.toString()).toBe(`quay.io/a/b:v1@${D}`);
      expect(d.withoutTag().toString()).toBe(`quay.io/a/b@${D}`);
      expect(r.withTag('v2').tag).toBe('v2');
      expect(r.withRepository('mirror.local:5000', 'x/a/b').toString()).toBe('mirror.local:5000/x/a/b:v1');
      expect(Reference.of('quay.io', 'a/b', { tag: 'v1' }).equals(r)).toBe(true);
    });
    it('validates in of() like parse()', () => {
      expect(code(() => Reference.of('quay.io', 'Bad'))).toBe('REFERENCE');
    });
  });
});
