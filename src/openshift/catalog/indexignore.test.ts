import { describe, expect, it } from 'vitest';
import { IndexIgnore, segmentMatch } from './indexignore.js';

describe('IndexIgnore', () => {
  it('always ignores the .indexignore files themselves', () => {
    const m = new IndexIgnore();
    expect(m.ignores('.indexignore')).toBe(true);
    expect(m.ignores('pkg/.indexignore')).toBe(true);
    expect(m.ignores('pkg/catalog.json')).toBe(false);
  });

  it('matches name patterns in any directory below the file', () => {
    const m = new IndexIgnore();
    m.add('.indexignore', '# docs are not catalog content\n\n  *.md  \nOWNERS\n');
    expect(m.ignores('README.md')).toBe(true);
    expect(m.ignores('pkg/docs/usage.md')).toBe(true);
    expect(m.ignores('pkg/OWNERS')).toBe(true);
    expect(m.ignores('pkg/catalog.json')).toBe(false);
  });

  it('scopes patterns to the directory of their .indexignore', () => {
    const m = new IndexIgnore();
    m.add('pkg-a/.indexignore', 'extra.yaml\n');
    expect(m.ignores('pkg-a/extra.yaml')).toBe(true);
    expect(m.ignores('pkg-b/extra.yaml')).toBe(false);
    expect(m.ignores('extra.yaml')).toBe(false);
  });

  it('matches globs with / relative to their directory, ** crossing directories', () => {
    const m = new IndexIgnore();
    m.add('.indexignore', 'tests/*.json\n**/fixtures/*.yaml\nold/\n');
    expect(m.ignores('tests/a.json')).toBe(true);
    expect(m.ignores('pkg/tests/a.json')).toBe(false);
    expect(m.ignores('x/y/fixtures/f.yaml')).toBe(true);
    expect(m.ignores('fixtures/f.yaml')).toBe(true);
    expect(m.ignores('old/catalog.json')).toBe(true);
    expect(m.ignores('old')).toBe(false); // a file named old is not the directory old/
  });

  it('lets a later ! pattern re-include a file', () => {
    const m = new IndexIgnore();
    m.add('.indexignore', '*.json\n!keep.json\n');
    expect(m.ignores('pkg/drop.json')).toBe(true);
    expect(m.ignores('pkg/keep.json')).toBe(false);
  });
});

describe('segmentMatch', () => {
  it('implements *, ?, classes and escapes', () => {
    expect(segmentMatch('cat*.js?n', 'catalog.json')).toBe(true);
    expect(segmentMatch('[!a]*', 'abc')).toBe(false);
    expect(segmentMatch('[a-c]x', 'bx')).toBe(true);
    expect(segmentMatch('\\*', '*')).toBe(true);
    expect(segmentMatch('\\*', 'a')).toBe(false);
  });
});
