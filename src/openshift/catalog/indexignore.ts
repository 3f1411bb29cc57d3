/**
 * `.indexignore` files, as opm's loader applies them (operator-registry declcfg
 * walkFiles with joelanford/ignore, on go-git's gitignore patterns):
 *
 * - every `.indexignore` anywhere under the catalog root contributes patterns, scoped
 *   to its own directory; blank lines and `#` comments are skipped, lines are trimmed;
 * - `.indexignore` files themselves are never loaded;
 * - a pattern without `/` matches any path component (`*.md`, `README`); with `/` it is
 *   a glob relative to the file's directory, `**` crossing directories; a trailing `/`
 *   restricts it to directories (so it still hides the files inside them); `!` re-includes;
 * - the last pattern that matches decides (files deeper in the tree come later).
 */
interface Pattern {
  readonly domain: readonly string[];
  readonly parts: readonly string[];
  readonly inclusion: boolean;
  readonly dirOnly: boolean;
  readonly glob: boolean;
}

export const INDEX_IGNORE = '.indexignore';

export class IndexIgnore {
  readonly #patterns: Pattern[] = [{ domain: [], parts: [INDEX_IGNORE], inclusion: false, dirOnly: false, glob: false }];

  /** Add the patterns of the `.indexignore` at `path` (relative to the catalog root). */
  add(path: string, text: string): void {
    const dir = path.split('/').slice(0, -1);
    for (const raw of text.split(/\r?\n/)) {
      let line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      let inclusion = false;
      if (line.startsWith('!')) {
        inclusion = true;
        line = line.slice(1);
      }
      let dirOnly = false;
      if (line.endsWith('/')) {
        dirOnly = true;
        line = line.slice(0, -1);
      }
      this.#patterns.push({ domain: dir, parts: line.split('/'), inclusion, dirOnly, glob: line.includes('/') });
    }
  }

  /** Is the file at `path` (relative to the root, `/`-separated) ignored? */
  ignores(path: string): boolean {
    const parts = path.split('/');
    for (let i = this.#patterns.length - 1; i >= 0; i--) {
      const r = match(this.#patterns[i]!, parts);
      if (r !== 'none') return r === 'exclude';
    }
    return false;
  }
}

function match(p: Pattern, path: readonly string[]): 'none' | 'exclude' | 'include' {
  if (path.length <= p.domain.length) return 'none';
  for (let i = 0; i < p.domain.length; i++) if (path[i] !== p.domain[i]) return 'none';
  const rest = path.slice(p.domain.length);
  const ok = p.glob ? globMatch(p, rest) : simpleMatch(p, rest);
  if (!ok) return 'none';
  return p.inclusion ? 'include' : 'exclude';
}

/** A name pattern matches any component; a directory-only one not the file itself. */
function simpleMatch(p: Pattern, path: readonly string[]): boolean {
  for (let i = 0; i < path.length; i++) {
    if (!segmentMatch(p.parts[0]!, path[i]!)) continue;
    if (p.dirOnly && i === path.length - 1) return false;
    if (i < path.length - 1 && p.inclusion) continue;
    return true;
  }
  return false;
}

function globMatch(p: Pattern, input: readonly string[]): boolean {
  let path = [...input];
  let matched = false;
  let traverse = false;
  for (let i = 0; i < p.parts.length; i++) {
    const part = p.parts[i]!;
    if (part === '') {
      traverse = false;
      continue;
    }
    if (part === '**') {
      if (i === p.parts.length - 1) {
        // a trailing ** matches whatever lies below what was matched so far
        return path.length > 0;
      }
      traverse = true;
      continue;
    }
    if (path.length === 0) return false;
    if (traverse) {
      traverse = false;
      let found = false;
      while (path.length > 0) {
        const e = path.shift()!;
        if (segmentMatch(part, e)) {
          found = true;
          break;
        }
      }
      if (!found) return false;
      matched = true;
    } else {
      if (!segmentMatch(part, path[0]!)) return false;
      path = path.slice(1);
      matched = true;
      // a file where the pattern still wants directories does not match
      if (path.length === 0 && i < p.parts.length - 1) matched = false;
    }
  }
  if (matched && path.length === 0 && p.dirOnly) return false;
  // the pattern named a directory above the file: everything inside it matches
  if (matched && path.length > 0 && p.inclusion) return false;
  return matched;
}

const segmentCache = new Map<string, RegExp>();

/** wildmatch on one path component: `*`, `?`, `[...]` / `[!...]`, `\` escapes. */
export function segmentMatch(pattern: string, name: string): boolean {
  let re = segmentCache.get(pattern);
  if (re === undefined) {
    let src = '';
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i]!;
      if (c === '\\' && i + 1 < pattern.length) src += escapeRe(pattern[++i]!);
      else if (c === '*') src += '.*';
      else if (c === '?') src += '.';
      else if (c === '[') {
        const end = pattern.indexOf(']', i + 2);
        if (end < 0) {
          src += '\\[';
          continue;
        }
        let body = pattern.slice(i + 1, end);
        let neg = '';
        if (body.startsWith('!') || body.startsWith('^')) {
          neg = '^';
          body = body.slice(1);
        }
        src += `[${neg}${body.replace(/[\\\]]/g, '\\$&')}]`;
        i = end;
      } else src += escapeRe(c);
    }
    re = new RegExp(`^${src}$`, 's');
    segmentCache.set(pattern, re);
  }
  return re.test(name);
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c;
}
