import { describe, expect, it } from 'vitest';
import { isAirlockError } from '../errors.js';
import { formatPlatform, parseAttachmentSelector, parsePlatform, platformMatches, typeMatches } from './attachments.js';

function usageMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isAirlockError(e, 'USAGE')) return e.message;
    throw e;
  }
  throw new Error('expected a USAGE error');
}

describe('typeMatches', () => {
  // [selector, attachment type, expected]
  const table: [string, string, boolean][] = [
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedx', true],
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedx+json', true],
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedx+xml', true],
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedx; version=1.5', true],
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedx+json;version=1.6', true],
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedxfoo', false],
    ['application/vnd.cyclonedx', 'application/vnd.cyclonedx.foo+json', false],
    ['application/vnd.cyclonedx+json', 'application/vnd.cyclonedx+xml', false],
    ['application/vnd.cyclonedx+json', 'application/vnd.cyclonedx', false],
    ['application/spdx+json', 'application/spdx+json', true],
    ['application/spdx+json', 'application/spdx', false],
    ['text/spdx', 'text/spdx', true],
    ['text/spdx', 'TEXT/SPDX', true],
    ['Application/SPDX', 'application/spdx+json', true],
    ['application/vnd.in-toto+json', 'application/vnd.in-toto+json', true],
    ['application/vnd.dev.sigstore.bundle+json;version=0.2', 'application/vnd.dev.sigstore.bundle+json; version="0.2"', true],
    ['application/vnd.dev.sigstore.bundle+json;version=0.2', 'application/vnd.dev.sigstore.bundle+json;version=0.1', false],
    ['application/vnd.dev.sigstore.bundle+json;version=0.2', 'application/vnd.dev.sigstore.bundle+json', false],
    ['application/spdx', '', false],
    ['application/spdx', 'not a type', false],
  ];
  it.each(table)('%s vs %s → %s', (wanted, candidate, expected) => {
    expect(typeMatches(wanted, candidate)).toBe(expected);
  });
});

describe('parseAttachmentSelector', () => {
  describe('when nothing is given', () => {
    it('selects no attachments (attachments are opt-in)', () => {
      const s = parseAttachmentSelector(undefined);
      expect(s.all).toBe(false);
      expect(s.types).toEqual([]);
      expect(s.matches('application/spdx+json')).toBe(false);
      expect(s.toString()).toBe('none');
    });
    it('treats an empty string and "none" the same way', () => {
      expect(parseAttachmentSelector('').types).toEqual([]);
      expect(parseAttachmentSelector('none').matches('text/spdx')).toBe(false);
    });
  });

  describe('when given all', () => {
    it('matches every type, also unparseable ones', () => {
      const s = parseAttachmentSelector('all');
      expect(s.all).toBe(true);
      expect(s.matches('application/x-anything')).toBe(true);
      expect(s.matches('')).toBe(true);
      expect(s.toString()).toBe('all');
    });
    it('refuses all combined with types', () => {
      expect(usageMessage(() => parseAttachmentSelector('all,sbom'))).toMatch(/"all" already selects every type/);
    });
  });

  describe('when given short names', () => {
    it('expands sbom to SPDX (JSON and text), CycloneDX and Syft', () => {
      const s = parseAttachmentSelector('sbom');
      expect(s.types).toEqual(['application/spdx', 'text/spdx', 'application/vnd.cyclonedx', 'application/vnd.syft']);
      for (const t of ['application/spdx+json', 'text/spdx', 'application/vnd.cyclonedx+json', 'application/vnd.cyclonedx+xml', 'application/vnd.cyclonedx', 'application/vnd.syft+json']) {
        expect(s.matches(t), t).toBe(true);
      }
      expect(s.matches('application/vnd.in-toto+json')).toBe(false);
    });
    it('expands spdx and cyclonedx separately', () => {
      expect(parseAttachmentSelector('spdx').matches('application/vnd.cyclonedx+json')).toBe(false);
      expect(parseAttachmentSelector('spdx').matches('text/spdx')).toBe(true);
      expect(parseAttachmentSelector('cyclonedx').matches('application/vnd.cyclonedx+xml')).toBe(true);
      expect(parseAttachmentSelector('cyclonedx').matches('application/spdx+json')).toBe(false);
    });
    it.each(['attestations', 'attestation', 'in-toto', 'ATTESTATIONS'])('expands %s to in-toto and DSSE envelopes', (name) => {
      const s = parseAttachmentSelector(name);
      expect(s.types).toEqual(['application/vnd.in-toto+json', 'application/vnd.dsse.envelope.v1+json']);
      expect(s.matches('application/vnd.in-toto+json')).toBe(true);
      expect(s.matches('application/vnd.dsse.envelope.v1+json')).toBe(true);
      expect(s.matches('application/spdx+json')).toBe(false);
    });
    it('accepts a list, a comma-separated string, and removes duplicates', () => {
      const a = parseAttachmentSelector(['spdx', 'text/spdx', ' application/vnd.cyclonedx ']);
      const b = parseAttachmentSelector('spdx, text/spdx,application/vnd.cyclonedx');
      expect(a.types).toEqual(['application/spdx', 'text/spdx', 'application/vnd.cyclonedx']);
      expect(b.types).toEqual(a.types);
      expect(a.toString()).toBe('application/spdx,text/spdx,application/vnd.cyclonedx');
    });
    it('matches any of an attachment\'s types', () => {
      const s = parseAttachmentSelector('attestations');
      expect(s.matchesAny(['application/vnd.dev.sigstore.bundle.v0.3+json', 'application/vnd.in-toto+json'])).toBe(true);
      expect(s.matchesAny(['application/vnd.dev.sigstore.bundle.v0.3+json'])).toBe(false);
    });
  });

  describe('when given something wrong', () => {
    it('suggests the closest short name', () => {
      const m = usageMessage(() => parseAttachmentSelector('sboms'));
      expect(m).toMatch(/"sboms" is neither a media type .* \(did you mean "sbom"\?\); short names: sbom, spdx/);
    });
    it('explains that signatures are not attachments', () => {
      expect(usageMessage(() => parseAttachmentSelector('signatures'))).toMatch(/--no-signatures/);
    });
    it('explains why provenance is not a type', () => {
      expect(usageMessage(() => parseAttachmentSelector('provenance'))).toMatch(/use "attestations"/);
    });
    it('refuses malformed media types', () => {
      expect(usageMessage(() => parseAttachmentSelector('application/'))).toMatch(/"application\/" is not a valid media type/);
      expect(usageMessage(() => parseAttachmentSelector('a/b/c'))).toMatch(/not a valid media type/);
      expect(usageMessage(() => parseAttachmentSelector('text/spdx;=x'))).toMatch(/not a valid media type/);
    });
    it('refuses none combined with types', () => {
      expect(usageMessage(() => parseAttachmentSelector(['none', 'sbom']))).toMatch(/"none" cannot be combined/);
    });
  });
});

describe('parsePlatform', () => {
  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['Linux/AMD64', { os: 'linux', architecture: 'amd64' }],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }],
    ['linux/aarch64', { os: 'linux', architecture: 'arm64' }],
    ['linux/s390x', { os: 'linux', architecture: 's390x' }],
  ])('parses %s', (s, p) => {
    expect(parsePlatform(s)).toEqual(p);
  });
  it('formats back to os/arch[/variant]', () => {
    expect(formatPlatform(parsePlatform('linux/arm/v7'))).toBe('linux/arm/v7');
    expect(formatPlatform(parsePlatform('linux/ppc64le'))).toBe('linux/ppc64le');
  });
  it.each(['linux', 'linux/', '/amd64', 'linux/amd64/v8/x', 'linux/amd 64', ''])('refuses %j with USAGE and the expected form', (s) => {
    expect(usageMessage(() => parsePlatform(s))).toMatch(/write os\/arch\[\/variant\], e\.g\. linux\/amd64/);
  });
});

describe('platformMatches', () => {
  const p = parsePlatform;
  it('compares os and architecture', () => {
    expect(platformMatches(p('linux/amd64'), p('linux/amd64'))).toBe(true);
    expect(platformMatches(p('linux/amd64'), p('linux/arm64'))).toBe(false);
    expect(platformMatches(p('linux/amd64'), p('windows/amd64'))).toBe(false);
  });
  it('accepts any variant when the filter names none', () => {
    expect(platformMatches(p('linux/arm'), p('linux/arm/v6'))).toBe(true);
  });
  it('applies containerd default variants (arm64 = v8, arm = v7)', () => {
    expect(platformMatches(p('linux/arm64/v8'), p('linux/arm64'))).toBe(true);
    expect(platformMatches(p('linux/arm/v7'), p('linux/arm'))).toBe(true);
    expect(platformMatches(p('linux/arm/v6'), p('linux/arm'))).toBe(false);
  });
});
