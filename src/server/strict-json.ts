/**
 * A strict look at JSON object keys, for manifests pushed to `airlock serve`.
 *
 * `JSON.parse` silently keeps the last of two equal keys, and Go's encoding/json (which
 * containers/image, CRI-O and Distribution use) matches struct fields case-insensitively,
 * so `{"layers":[],"Layers":[…]}` reads as two different manifests to two parsers. A
 * registry that checks one reading while a client acts on the other checks nothing. So a
 * pushed manifest is refused when any object repeats a key, or when an object that Go
 * decodes into a struct (the manifest, its descriptors, a platform) has two keys that Go
 * would fold onto one field.
 *
 * This scans the exact bytes for keys only; the text is valid JSON already (JSON.parse ran
 * first), so the scanner never has to report syntax errors.
 */

export interface KeyProblem {
  /** where the object is, as a JSON pointer (`` for the top level, `/layers/0`) */
  readonly path: string;
  readonly key: string;
  /** `duplicate`: the same key twice; `case-fold`: two keys one Go struct field would take */
  readonly kind: 'duplicate' | 'case-fold' | 'too-deep';
}

/** Deeper nesting is refused: real manifests nest a handful of levels, and the scan recurses. */
export const MAX_JSON_DEPTH = 64;

/**
 * Objects that Go decodes into structs (case-insensitive field matching), by where they
 * sit. Annotations and other maps decode exactly, so `Foo` and `foo` are two keys there.
 */
function isStructPath(segments: readonly string[]): boolean {
  const n = segments.length;
  if (n === 0) return true; // the manifest or index itself
  const last = segments[n - 1]!;
  if (n === 1) return last === 'config' || last === 'subject';
  if (n === 2) return (segments[0] === 'layers' || segments[0] === 'manifests') && /^\d+$/.test(last);
  return n === 3 && segments[0] === 'manifests' && last === 'platform';
}

/**
 * Go folds keys with Unicode simple case folding (the Kelvin sign folds to `k`, the long
 * s to `s`); upper-casing then lower-casing reaches the same point for the ASCII field
 * names of the image-spec.
 */
function fold(key: string): string {
  return key.toUpperCase().toLowerCase();
}

/** The first key problem in `text` (which must be valid JSON), or undefined when there is none. */
export function findKeyProblem(text: string): KeyProblem | undefined {
  let i = 0;
  const segments: string[] = [];
  const pointer = (): string => segments.map((s) => `/${s.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
  const ws = (): void => {
    for (let c = text.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++i));
  };
  const str = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): KeyProblem | undefined => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (segments.length >= MAX_JSON_DEPTH) return { path: pointer(), key: '', kind: 'too-deep' };
      return c === '{' ? object() : array();
    }
    if (c === '"') str();
    else while (i < text.length && !',]} \t\n\r'.includes(text[i]!)) i++;
    return undefined;
  };
  const object = (): KeyProblem | undefined => {
    i++; // {
    const keys = new Set<string>();
    const folded = isStructPath(segments) ? new Set<string>() : undefined;
    ws();
    if (text[i] === '}') {
      i++;
      return undefined;
    }
    for (;;) {
      ws();
      const key = str();
      if (keys.has(key)) return { path: pointer(), key, kind: 'duplicate' };
      keys.add(key);
      if (folded) {
        const f = fold(key);
        if (folded.has(f)) return { path: pointer(), key, kind: 'case-fold' };
        folded.add(f);
      }
      ws();
      i++; // :
      segments.push(key);
      const p = value();
      segments.pop();
      if (p) return p;
      ws();
      if (text[i++] === '}') return undefined; // else ','
    }
  };
  const array = (): KeyProblem | undefined => {
    i++; // [
    ws();
    if (text[i] === ']') {
      i++;
      return undefined;
    }
    for (let n = 0; ; n++) {
      segments.push(String(n));
      const p = value();
      segments.pop();
      if (p) return p;
      ws();
      if (text[i++] === ']') return undefined; // else ','
    }
  };
  return value();
}
