import { describe, expect, it } from 'vitest';
import { findKeyProblem, MAX_JSON_DEPTH } from './strict-json.js';

describe('findKeyProblem', () => {
  describe('when every key is unique', () => {
    it('finds nothing in a manifest, in nested maps, or in scalars and strings with escapes', () => {
      const m = {
        schemaVersion: 2,
        config: { mediaType: 'a', digest: 'sha256:x', size: 1 },
        layers: [{ mediaType: 'b', digest: 'sha256:y', size: 2, annotations: { 'a"b': '\\"}', Foo: '1', foo: '2' } }],
        annotations: { Key: 'x', key: 'y' },
      };
      expect(findKeyProblem(JSON.stringify(m))).toBeUndefined();
      expect(findKeyProblem(JSON.stringify(m, null, '\t'))).toBeUndefined();
      for (const t of ['1', '"s"', 'null', '[]', '{}', '[{"a":1},{"a":2}]', ' { "a" : [ 1 , true , null ] } ']) expect(findKeyProblem(t), t).toBeUndefined();
    });
  });

  describe('when an object repeats a key', () => {
    it('reports the duplicate at any depth, including keys spelled with escapes', () => {
      expect(findKeyProblem('{"layers":[],"config":{},"layers":[{"digest":"x"}]}')).toEqual({ path: '', key: 'layers', kind: 'duplicate' });
      expect(findKeyProblem('{"annotations":{"a":"1","\\u0061":"2"}}')).toEqual({ path: '/annotations', key: 'a', kind: 'duplicate' });
      expect(findKeyProblem('{"layers":[{},{"size":1,"size":2}]}')).toEqual({ path: '/layers/1', key: 'size', kind: 'duplicate' });
      expect(findKeyProblem('{"x":{"y":[[{"z":1,"z":1}]]}}')).toEqual({ path: '/x/y/0/0', key: 'z', kind: 'duplicate' });
    });
  });

  describe('when two keys fold onto one Go struct field', () => {
    it('reports them in the manifest, a descriptor and a platform, but not in maps', () => {
      expect(findKeyProblem('{"layers":[],"Layers":[]}')).toEqual({ path: '', key: 'Layers', kind: 'case-fold' });
      expect(findKeyProblem('{"config":{"digest":"a","DIGEST":"b"}}')).toEqual({ path: '/config', key: 'DIGEST', kind: 'case-fold' });
      expect(findKeyProblem('{"manifests":[{"platform":{"os":"linux","OS":"windows"}}]}')).toEqual({ path: '/manifests/0/platform', key: 'OS', kind: 'case-fold' });
      // Go folds the long s (U+017F) to s: "\u017Fize" would fill the size field
      expect(findKeyProblem('{"subject":{"size":1,"\u017Fize":2}}')).toEqual({ path: '/subject', key: '\u017Fize', kind: 'case-fold' });
      expect(findKeyProblem('{"annotations":{"Layers":"1","layers":"2"}}')).toBeUndefined();
    });
  });

  describe('when the nesting is deeper than any manifest needs', () => {
    it('refuses it instead of recursing without bound', () => {
      const deep = `${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}`;
      expect(findKeyProblem(deep)?.kind).toBe('too-deep');
      const ok = `${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`;
      expect(findKeyProblem(ok)).toBeUndefined();
    });
  });
});
