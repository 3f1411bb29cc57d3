import { describe, expect, it } from 'vitest';
import { AirlockError } from '../errors.js';
import { compileRe2, isBlockedImage, parseBlockedImages } from './blocked-images.js';
import { parseYaml } from './yaml-node.js';

function parse(yaml: string) {
  return parseBlockedImages(parseYaml(yaml, 'set.yaml').map(['blockedImages']).get('blockedImages')!);
}

function configError(yaml: string): string {
  try {
    parse(yaml);
  } catch (e) {
    expect(e).toBeInstanceOf(AirlockError);
    expect((e as AirlockError).code).toBe('CONFIG');
    return (e as AirlockError).message;
  }
  throw new Error('expected a CONFIG error');
}

describe('parseBlockedImages', () => {
  it('reads each name as a pattern, with its line', () => {
    const p = parse('blockedImages:\n- name: ubi8/ubi\n- name: "^quay\\\\.io/team/.*:latest$"\n');
    expect(p.map((x) => [x.pattern, x.source.line])).toEqual([
      ['ubi8/ubi', 2],
      ['^quay\\.io/team/.*:latest$', 3],
    ]);
  });

  describe('when a pattern does not compile as RE2', () => {
    it.each([
      ['"ubi[8"', 'missing closing ]'],
      ['"(?=x)ubi"', 'look-around'],
      ['"(a)\\\\1"', 'back-reference'],
      ['"a{1001}"', 'repetition count above 1000'],
      ['"\\\\pL"', 'Unicode classes'],
      ['"a**"', 'nested repetition'],
      ['"*ubi"', 'not a valid regular expression'],
    ])('refuses %s with the field named', (pattern, why) => {
      const msg = configError(`blockedImages:\n- name: x\n- name: ${pattern}\n`);
      expect(msg).toMatch(/^set\.yaml:3: blockedImages\[1\]\.name: /);
      expect(msg).toContain(why);
    });
  });

  it('refuses an empty pattern, which would block everything', () => {
    expect(configError('blockedImages:\n- name: ""\n')).toMatch(/set\.yaml:2: blockedImages\[0\]\.name: must not be empty/);
  });
});

describe('isBlockedImage', () => {
  const patterns = parse(
    [
      'blockedImages:',
      '- name: registry.redhat.io/ubi8/ubi', // a plain reference is a pattern too: substring, . is any character
      '- name: "^quay\\\\.io/team/app(:|@|$)"',
      '- name: "(?i)DEBUG"',
      '- name: "\\\\Aexample\\\\.com/x\\\\z"',
    ].join('\n'),
  );
  const blocked = (ref: string, normalised?: string): string | undefined =>
    isBlockedImage(patterns, normalised === undefined ? [ref] : [ref, normalised])?.pattern;

  it('matches unanchored, as regexp.MatchString does', () => {
    expect(blocked('registry.redhat.io/ubi8/ubi:8.9')).toBe('registry.redhat.io/ubi8/ubi');
    expect(blocked('registry.redhat.io/ubi8/ubi-minimal@sha256:abc')).toBe('registry.redhat.io/ubi8/ubi');
    expect(blocked('mirror.local/registry-redhat-io/ubi8/ubi:1')).toBe('registry.redhat.io/ubi8/ubi');
  });
  it('honours anchors and escapes', () => {
    expect(blocked('quay.io/team/app:1.0')).toBe('^quay\\.io/team/app(:|@|$)');
    expect(blocked('quay.io/team/application:1.0')).toBeUndefined();
    expect(blocked('example.com/x')).toBe('\\Aexample\\.com/x\\z');
    expect(blocked('example.com/xy')).toBeUndefined();
  });
  it('translates a leading flag group', () => {
    expect(blocked('quay.io/team/debug-tools:1')).toBe('(?i)DEBUG');
  });
  it('strips the docker:// transport and searches the normalised form too', () => {
    expect(blocked('docker://quay.io/team/app@sha256:1')).toBe('^quay\\.io/team/app(:|@|$)');
    const p = parse('blockedImages:\n- name: "^docker\\\\.io/library/busybox:"\n');
    expect(isBlockedImage(p, ['busybox:1.36'])).toBeUndefined();
    expect(isBlockedImage(p, ['busybox:1.36', 'docker.io/library/busybox:1.36'])?.pattern).toBe('^docker\\.io/library/busybox:');
  });
});

describe('compileRe2', () => {
  it('rewrites RE2-only syntax', () => {
    expect(compileRe2('(?P<repo>[[:alnum:]]+)/x').exec('ab1/x')?.groups?.repo).toBe('ab1');
    expect(compileRe2('\\Qa.b\\E').test('a.b')).toBe(true);
    expect(compileRe2('\\Qa.b\\E').test('axb')).toBe(false);
    expect(compileRe2('a{,2}').test('a{,2}')).toBe(true); // not a repetition in RE2: literal
    expect(compileRe2('\\x{41}').test('A')).toBe(true);
  });
});
