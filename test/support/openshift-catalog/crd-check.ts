import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * Validate a resource against a CRD's structural schema, the checks the API server
 * applies to what airlock writes: type, required, properties (an unknown field is an
 * error: the server would prune it), enum, min/max(Length|Items), pattern, minimum/
 * maximum, format byte, list-type set, and the CEL rules (x-kubernetes-validations)
 * through a small CEL interpreter: literals, `self` and field access, `has()`, `size()`,
 * `!`, `&&`, `||`, comparisons, `?:`, and the string functions `matches`, `find`,
 * `substring`, `size`, `startsWith`, `endsWith`, `contains`. A rule using anything else
 * is counted in `skipped`, so a test can require that nothing was skipped.
 */
export type Schema = Record<string, unknown> & {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  'x-kubernetes-validations'?: { rule: string; message: string }[];
};

export interface CrdCheck {
  errors: string[];
  rulesChecked: number;
  skipped: string[];
}

const CRD_DIR = fileURLToPath(new URL('../../../fixtures/openshift-crds/', import.meta.url));

export async function crdSchema(file: string, version: string): Promise<Schema> {
  const crd = parse(await readFile(`${CRD_DIR}${file}`, 'utf8')) as { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } };
  const v = crd.spec.versions.find((x) => x.name === version);
  if (!v) throw new Error(`${file} has no version ${version}`);
  return v.schema.openAPIV3Schema;
}

export function checkAgainst(schema: Schema, doc: unknown): CrdCheck {
  const out: CrdCheck = { errors: [], rulesChecked: 0, skipped: [] };
  walk(schema, doc, '', out);
  return out;
}

function walk(s: Schema, v: unknown, path: string, out: CrdCheck): void {
  const err = (m: string): void => void out.errors.push(`${path || '<root>'}: ${m}`);
  const isObj = typeof v === 'object' && v !== null && !Array.isArray(v);
  switch (s.type) {
    case 'object':
      if (!isObj) return err('must be an object');
      break;
    case 'array':
      if (!Array.isArray(v)) return err('must be an array');
      break;
    case 'string':
      if (typeof v !== 'string') return err('must be a string');
      break;
    case 'integer':
      if (!Number.isInteger(v)) return err('must be an integer');
      break;
    case 'boolean':
      if (typeof v !== 'boolean') return err('must be a boolean');
      break;
  }
  if (s.enum && !s.enum.includes(v)) err(`${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof v === 'string') {
    if (typeof s.maxLength === 'number' && v.length > s.maxLength) err(`longer than ${s.maxLength}`);
    if (typeof s.minLength === 'number' && v.length < s.minLength) err(`shorter than ${s.minLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern).test(v)) err(`does not match ${s.pattern}`);
    if (s.format === 'byte' && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) err('not base64');
  }
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) err(`below ${s.minimum}`);
    if (typeof s.maximum === 'number' && v > s.maximum) err(`above ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) err(`more than ${s.maxItems} items`);
    if (typeof s.minItems === 'number' && v.length < s.minItems) err(`fewer than ${s.minItems} items`);
    if (s['x-kubernetes-list-type'] === 'set' && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) err('duplicate items in a set');
    if (s.items) v.forEach((x, i) => walk(s.items!, x, `${path}[${i}]`, out));
  }
  if (isObj) {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (o[r] === undefined) err(`missing required field ${r}`);
    if (s.properties) {
      for (const [k, x] of Object.entries(o)) {
        const sub = s.properties[k];
        if (!sub) out.errors.push(`${path}.${k}: unknown field`);
        else walk(sub, x, `${path}.${k}`, out);
      }
    } else if (typeof s.additionalProperties === 'object' && s.additionalProperties !== null) {
      for (const [k, x] of Object.entries(o)) walk(s.additionalProperties as Schema, x, `${path}.${k}`, out);
    }
  }
  for (const rule of s['x-kubernetes-validations'] ?? []) {
    let ok: unknown;
    try {
      ok = evalCel(rule.rule, v);
    } catch (e) {
      if (e instanceof Unsupported) {
        out.skipped.push(rule.rule);
        continue;
      }
      throw e;
    }
    out.rulesChecked++;
    if (ok !== true) err(rule.message);
  }
}

// ---------------------------------------------------------------------------------------------
// A small CEL interpreter (cel-spec langdef.md), enough for the rules of the CRDs we check.

export class Unsupported extends Error {}

type Tok = { t: 'str' | 'num' | 'id' | 'op'; v: string };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "'" || c === '"') {
      let s = '';
      i++;
      while (i < src.length && src[i] !== c) {
        if (src[i] === '\\') {
          const n = src[i + 1]!;
          s += n === 'n' ? '\n' : n === 't' ? '\t' : n;
          i += 2;
        } else s += src[i++];
      }
      i++;
      out.push({ t: 'str', v: s });
      continue;
    }
    if (/[0-9]/.test(c)) {
      let n = '';
      while (i < src.length && /[0-9]/.test(src[i]!)) n += src[i++];
      out.push({ t: 'num', v: n });
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let n = '';
      while (i < src.length && /[A-Za-z0-9_]/.test(src[i]!)) n += src[i++];
      out.push({ t: 'id', v: n });
      continue;
    }
    const two = src.slice(i, i + 2);
    if (['==', '!=', '<=', '>=', '&&', '||'].includes(two)) {
      out.push({ t: 'op', v: two });
      i += 2;
      continue;
    }
    if ('()!<>?:.,[]'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
      continue;
    }
    throw new Unsupported(`token ${c}`);
  }
  return out;
}

export function evalCel(src: string, self: unknown): unknown {
  const toks = tokenize(src);
  let p = 0;
  const peek = (v?: string): boolean => p < toks.length && (v === undefined || toks[p]!.v === v) && (v === undefined || toks[p]!.t === 'op' || toks[p]!.t === 'id');
  const eat = (v: string): void => {
    if (toks[p]?.v !== v) throw new Unsupported(`expected ${v}`);
    p++;
  };
  // Each parse function returns a thunk, so `?:`, `&&` and `||` evaluate lazily as CEL does.
  type Thunk = () => unknown;
  const ternary = (): Thunk => {
    const c = or();
    if (peek('?')) {
      p++;
      const a = ternary();
      eat(':');
      const b = ternary();
      return () => (c() === true ? a() : b());
    }
    return c;
  };
  const or = (): Thunk => {
    let l = and();
    while (peek('||')) {
      p++;
      const a = l;
      const r = and();
      l = () => a() === true || r() === true;
    }
    return l;
  };
  const and = (): Thunk => {
    let l = cmp();
    while (peek('&&')) {
      p++;
      const a = l;
      const r = cmp();
      l = () => a() === true && r() === true;
    }
    return l;
  };
  const cmp = (): Thunk => {
    const l = unary();
    const op = toks[p]?.v;
    if (op !== undefined && ['==', '!=', '<', '<=', '>', '>='].includes(op) && toks[p]!.t === 'op') {
      p++;
      const r = unary();
      return () => {
        const a = l();
        const b = r();
        switch (op) {
          case '==':
            return a === b;
          case '!=':
            return a !== b;
          case '<':
            return (a as number) < (b as number);
          case '<=':
            return (a as number) <= (b as number);
          case '>':
            return (a as number) > (b as number);
          default:
            return (a as number) >= (b as number);
        }
      };
    }
    return l;
  };
  const unary = (): Thunk => {
    if (peek('!')) {
      p++;
      const x = unary();
      return () => x() !== true;
    }
    return postfix();
  };
  const postfix = (): Thunk => {
    let x = primary();
    while (peek('.')) {
      p++;
      const name = toks[p++]!;
      if (name.t !== 'id') throw new Unsupported('member');
      if (peek('(')) {
        p++;
        const args: Thunk[] = [];
        while (!peek(')')) {
          args.push(ternary());
          if (peek(',')) p++;
        }
        eat(')');
        const recv = x;
        x = () => method(recv(), name.v, args.map((a) => a()));
      } else {
        const recv = x;
        x = () => {
          const o = recv();
          if (typeof o !== 'object' || o === null) throw new Error(`no field ${name.v}`);
          const v = (o as Record<string, unknown>)[name.v];
          if (v === undefined) throw new Error(`no such key: ${name.v}`);
          return v;
        };
      }
    }
    return x;
  };
  const primary = (): Thunk => {
    const t = toks[p++];
    if (t === undefined) throw new Unsupported('end');
    if (t.t === 'str') return () => t.v;
    if (t.t === 'num') return () => Number(t.v);
    if (t.t === 'op' && t.v === '(') {
      const x = ternary();
      eat(')');
      return x;
    }
    if (t.t === 'id') {
      if (t.v === 'self') return () => self;
      if (t.v === 'true') return () => true;
      if (t.v === 'false') return () => false;
      if (t.v === 'has') {
        // has(x.a.b): fields up to the last are selected, the last one is a presence test
        eat('(');
        const base = primary();
        const names: string[] = [];
        while (peek('.')) {
          p++;
          const n = toks[p++];
          if (n?.t !== 'id') throw new Unsupported('has');
          names.push(n.v);
        }
        eat(')');
        if (names.length === 0) throw new Unsupported('has');
        return () => {
          let o = base();
          for (const n of names.slice(0, -1)) {
            if (typeof o !== 'object' || o === null || (o as Record<string, unknown>)[n] === undefined) throw new Error(`no such key: ${n}`);
            o = (o as Record<string, unknown>)[n];
          }
          return typeof o === 'object' && o !== null && (o as Record<string, unknown>)[names[names.length - 1]!] !== undefined;
        };
      }
      if (t.v === 'size' && peek('(')) {
        p++;
        const a = ternary();
        eat(')');
        return () => method(a(), 'size', []);
      }
      throw new Unsupported(`identifier ${t.v}`);
    }
    throw new Unsupported(`token ${t.v}`);
  };
  const x = ternary();
  if (p !== toks.length) throw new Unsupported('trailing tokens');
  return x();
}

function method(recv: unknown, name: string, args: unknown[]): unknown {
  const s = recv;
  switch (name) {
    case 'size':
      if (typeof s === 'string') return [...s].length;
      if (Array.isArray(s)) return s.length;
      if (typeof s === 'object' && s !== null) return Object.keys(s).length;
      break;
    case 'matches':
      if (typeof s === 'string') return new RegExp(args[0] as string).test(s);
      break;
    case 'find':
      if (typeof s === 'string') return new RegExp(args[0] as string).exec(s)?.[0] ?? '';
      break;
    case 'substring':
      if (typeof s === 'string') return [...s].slice(args[0] as number, args[1] as number | undefined).join('');
      break;
    case 'startsWith':
      if (typeof s === 'string') return s.startsWith(args[0] as string);
      break;
    case 'endsWith':
      if (typeof s === 'string') return s.endsWith(args[0] as string);
      break;
    case 'contains':
      if (typeof s === 'string') return s.includes(args[0] as string);
      break;
  }
  throw new Unsupported(`method ${name}`);
}
