import { describe, expect, it } from 'vitest';
import { AirlockError } from '../../errors.js';
import { MetaStreamDecoder } from './meta-stream.js';

/** Feed `text` in chunks of `size` bytes (to cross every boundary) and return the objects. */
function decode(text: string, size = 7, max?: number): unknown[] {
  const out: unknown[] = [];
  const d = new MetaStreamDecoder({ file: 'pkg/catalog.json', onObject: (v) => out.push(v), ...(max !== undefined ? { maxObjectBytes: max } : {}) });
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) d.write(bytes.subarray(i, i + size));
  d.end();
  return out;
}

function failure(text: string, max?: number): string {
  try {
    decode(text, 5, max);
  } catch (e) {
    expect(e).toBeInstanceOf(AirlockError);
    expect((e as AirlockError).detail?.catalog).toBe('syntax');
    return (e as AirlockError).message;
  }
  throw new Error('expected a syntax error');
}

describe('MetaStreamDecoder', () => {
  describe('when the file is JSON', () => {
    it('reads a stream of concatenated, indented objects, strings with braces and escapes included', () => {
      const text = `\n{\n    "schema": "olm.package",\n    "name": "a{\\"}"\n}\n{"schema":"olm.channel","entries":[{"name":"x"}],"n":"é]"}{"schema":"olm.bundle"}\n`;
      for (const size of [1, 3, 7, 1000]) {
        expect(decode(text, size)).toEqual([
          { schema: 'olm.package', name: 'a{"}' },
          { schema: 'olm.channel', entries: [{ name: 'x' }], n: 'é]' },
          { schema: 'olm.bundle' },
        ]);
      }
    });
    it('refuses a value that is not an object', () => {
      expect(failure('{"a":1}\n[1,2]')).toMatch(/^catalog file pkg\/catalog\.json: byte 8: expected a JSON object/);
    });
    it('refuses a file cut in the middle of an object', () => {
      expect(failure('{"a":1}\n{"b": "x')).toMatch(/ends inside a JSON object \(started at byte 8\)/);
    });
    it('refuses invalid JSON with the object located', () => {
      expect(failure('{"a":1}{"b" 2}')).toMatch(/the object at byte 7 is not valid JSON/);
    });
    it('refuses an object over the size limit', () => {
      expect(failure(`{"a":"${'x'.repeat(100)}"}`, 50)).toMatch(/larger than the 50-byte limit/);
    });
  });

  describe('when the file is YAML', () => {
    it('reads ---separated documents, skipping empty ones', () => {
      const text = '---\nschema: olm.package\nname: a\n--- # next\n# only a comment\n---\n  schema: olm.channel\n  entries:\n  - name: a.v1\n    skips: [a.v0]\n---\n\n';
      for (const size of [1, 4, 1000]) {
        expect(decode(text, size)).toEqual([
          { schema: 'olm.package', name: 'a' },
          { schema: 'olm.channel', entries: [{ name: 'a.v1', skips: ['a.v0'] }] },
        ]);
      }
    });
    it('keeps the indentation of a first line that starts with spaces', () => {
      expect(decode('   \n  schema: olm.package\n  name: a\n', 2)).toEqual([{ schema: 'olm.package', name: 'a' }]);
    });
    it('refuses a separator line with content after it', () => {
      expect(failure('a: 1\n--- b: 2\n')).toMatch(/line 2: a document separator "---" must stand alone/);
    });
    it('reports YAML syntax errors with the file line', () => {
      expect(failure('a: 1\n---\nb: [1,\n')).toMatch(/^catalog file pkg\/catalog\.json: line \d+: YAML syntax error/);
    });
    it('refuses a document that is not a mapping', () => {
      expect(failure('- 1\n- 2\n')).toMatch(/the YAML document at line 1 is not an object/);
    });
  });

  it('reads nothing from a blank file', () => {
    expect(decode('  \n\n')).toEqual([]);
  });
});
