import { requireField, type SourcePos } from './trust-policy.js';
import type { YamlCursor } from './yaml-node.js';

/**
 * `mirror.blockedImages[]` as oc-mirror v2 applies it (cli/executor.go excludeImages,
 * config/validate.go validateBlockedImages):
 *
 * - each `name` is a Go regular expression (RE2 syntax), compiled once; one that does
 *   not compile makes the whole config invalid;
 * - it is searched, unanchored, in the image's reference *as written* (the text in the
 *   ImageSetConfiguration or in the catalog's relatedImages, without the `docker://`
 *   transport), and in the reference of its mirror destination: `regexp.MatchString`;
 * - an image is dropped when any pattern matches either string. It is never an error
 *   for a pattern to match nothing.
 *
 * So `name: registry.redhat.io/ubi8/ubi` also blocks `registry.redhat.io/ubi8/ubi-minimal`
 * and `quay.io/x/registry.redhat.io/ubi8/ubi`, since `.` is any character and the match is a
 * substring: write `^registry\.redhat\.io/ubi8/ubi(:|@|$)` to block exactly one repository.
 *
 * airlock matches at pack time, before any destination exists, so only the source
 * reference is searched: the written form and airlock's normalised form
 * (`docker.io/library/…`), so a pattern written against either is honoured. A pattern
 * written against the *mirror* name (which oc-mirror also searches) therefore never
 * matches here; the docs say so.
 *
 * RE2 and JavaScript regular expressions differ. Each pattern is translated: the RE2
 * syntax that JavaScript spells differently (`(?P<name>`, `\A`, `\z`, `\Q…\E`, leading
 * `(?i)`/`(?s)`/`(?m)` flags, POSIX classes `[[:alpha:]]`) is rewritten, and what RE2
 * refuses but JavaScript would accept (look-around, back-references, repetition counts
 * above 1000) is refused, so airlock refuses exactly the configs oc-mirror refuses and
 * accepts the others with the same meaning. Unicode classes (`\p{…}`) are refused: image
 * references are ASCII.
 */
export interface BlockedImagePattern {
  /** the pattern as written */
  readonly pattern: string;
  readonly regexp: RegExp;
  readonly source: SourcePos;
}

/** Parse `mirror.blockedImages` (the cursor of that field). */
export function parseBlockedImages(c: YamlCursor): BlockedImagePattern[] {
  return c.seq('a list of {name: PATTERN}').map((item) => {
    const m = item.map(['name'], 'a mapping {name: PATTERN}');
    const nameC = requireField(item, m, 'name');
    const pattern = nameC.str('a regular expression (RE2 syntax)');
    if (pattern === '') nameC.fail('must not be empty: an empty pattern would block every image');
    let regexp: RegExp;
    try {
      regexp = compileRe2(pattern);
    } catch (e) {
      return nameC.fail(`"${pattern}" is not a valid regular expression (${(e as Error).message}); oc-mirror reads blockedImages as Go (RE2) regular expressions`);
    }
    return Object.freeze({ pattern, regexp, source: { file: item.file, line: item.line } });
  });
}

/**
 * Is an image blocked? `names` are the references to search: the one written in the
 * source (catalog relatedImages, additionalImages) and its normalised form.
 */
export function isBlockedImage(patterns: readonly BlockedImagePattern[], names: readonly string[]): BlockedImagePattern | undefined {
  for (const p of patterns) {
    for (const n of names) {
      const s = n.startsWith('docker://') ? n.slice('docker://'.length) : n;
      if (p.regexp.test(s)) return p;
    }
  }
  return undefined;
}

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const MAX_REPEAT = 1000;

/**
 * Translate an RE2 pattern into an equivalent JavaScript RegExp (no `g`/`y`: `test` is
 * stateless), or throw an Error saying why RE2 would refuse it.
 */
export function compileRe2(pattern: string): RegExp {
  let src = pattern;
  let flags = '';
  // RE2 flag groups: only a leading (?flags) is translated; i, m, s map to JS flags.
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    if (lead[1]!.includes('U')) throw new Error('the U (ungreedy) flag has no JavaScript equivalent');
    flags = [...new Set(lead[1]!)].join('');
    src = src.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (ch === '\\') {
      const next = src[i + 1];
      if (next === undefined) throw new Error('trailing backslash');
      if (/[1-9]/.test(next)) throw new Error(`back-reference \\${next} (RE2 has none)`);
      if (next === 'k' && src[i + 2] === '<') throw new Error('named back-reference (RE2 has none)');
      if (next === 'p' || next === 'P') throw new Error('Unicode classes (\\p) are not supported for image references');
      if (next === 'C') throw new Error('\\C (any byte) is not supported');
      if (next === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const lit = end < 0 ? src.slice(i + 2) : src.slice(i + 2, end);
        out += lit.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end < 0 ? src.length : end + 1;
        continue;
      }
      if (!inClass && next === 'A') {
        out += '(?<![\\s\\S])';
        i++;
        continue;
      }
      if (!inClass && next === 'z') {
        out += '(?![\\s\\S])';
        i++;
        continue;
      }
      if (next === 'x' && src[i + 2] === '{') {
        const end = src.indexOf('}', i + 3);
        if (end < 0) throw new Error('unterminated \\x{…}');
        const hex = src.slice(i + 3, end);
        if (!/^[0-9A-Fa-f]{1,6}$/.test(hex) || parseInt(hex, 16) > 0x10ffff) throw new Error(`invalid escape \\x{${hex}}`);
        const cp = parseInt(hex, 16);
        out += cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
        if (cp > 0xffff) flags += flags.includes('u') ? '' : 'u';
        i = end;
        continue;
      }
      if (next === 'a') {
        out += '\\x07';
        i++;
        continue;
      }
      // RE2 accepts escapes of punctuation and the classes/anchors JS also knows.
      if (/[A-Za-z0-9]/.test(next) && !/[dDsSwWbBfnrtvx0]/.test(next)) throw new Error(`invalid escape \\${next}`);
      out += ch + next;
      i++;
      continue;
    }
    if (inClass) {
      if (ch === '[' && src[i + 1] === ':') {
        const end = src.indexOf(':]', i + 2);
        if (end < 0) throw new Error('unterminated POSIX class');
        let name = src.slice(i + 2, end);
        const negated = name.startsWith('^');
        if (negated) name = name.slice(1);
        const set = POSIX_CLASSES[name];
        if (set === undefined) throw new Error(`unknown POSIX class [:${name}:]`);
        if (negated) throw new Error('negated POSIX classes inside a bracket expression are not supported');
        out += set;
        i = end + 1;
        continue;
      }
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      // a leading ] (or ^]) is a literal in RE2 and in JS only when escaped
      if (src[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (src[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (ch === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (rest.startsWith('<') && !rest.startsWith('<=') && !rest.startsWith('<!')) {
        out += '(?<';
        i += 2;
        continue;
      }
      if (rest.startsWith(':')) {
        out += '(?:';
        i += 2;
        continue;
      }
      if (rest.startsWith('=') || rest.startsWith('!') || rest.startsWith('<=') || rest.startsWith('<!')) throw new Error('look-around assertions are not supported by RE2');
      throw new Error('flag groups are supported only at the start of the pattern, as (?i), (?s) or (?m)');
    }
    if (ch === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
      if (m) {
        const a = Number(m[1]);
        const b = m[3] !== undefined && m[3] !== '' ? Number(m[3]) : undefined;
        if (a > MAX_REPEAT || (b !== undefined && b > MAX_REPEAT)) throw new Error(`repetition count above ${MAX_REPEAT}`);
        if (b !== undefined && b < a) throw new Error(`invalid repetition {${a},${b}}`);
        if (/[*+?}]/.test(out.slice(-1)) && !/\\[*+?}]$/.test(out)) throw new Error('nested repetition operator');
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
      // a { that does not start a repetition is a literal in RE2
      out += '\\{';
      continue;
    }
    if (ch === '}') {
      out += '\\}';
      continue;
    }
    if ((ch === '*' || ch === '+' || ch === '?') && /[*+]$/.test(out) && !/\\[*+]$/.test(out) && ch !== '?') {
      throw new Error(`nested repetition operator ${out.slice(-1)}${ch}`);
    }
    out += ch;
  }
  if (inClass) throw new Error('missing closing ]');
  try {
    return new RegExp(out, flags);
  } catch (e) {
    throw new Error((e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, ''));
  }
}
