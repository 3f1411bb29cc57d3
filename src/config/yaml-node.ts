import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair } from 'yaml';
import { AirlockError } from '../errors.js';

/**
 * A validating cursor over a parsed YAML node. Every value read from a config file
 * goes through one of these, so every error can name the file, the line and the
 * field path (`images[2].ref`) of what is wrong. Validation walks the YAML nodes,
 * not `toJS()`, because only the nodes remember where they came from.
 */
export class YamlCursor {
  readonly #node: Node | null;
  readonly #src: SourceInfo;
  /** dotted field path from the document root: `images[2].ref`; '' for the root */
  readonly path: string;
  /** where a missing value would have been: the parent's position */
  readonly #fallbackOffset: number;
  /** the mapping key this value belongs to, when it is a mapping value */
  readonly #keyNode: Node | null;

  constructor(node: Node | null, src: SourceInfo, path: string, fallbackOffset = 0, keyNode: Node | null = null) {
    this.#node = node;
    this.#src = src;
    this.path = path;
    this.#fallbackOffset = fallbackOffset;
    this.#keyNode = keyNode;
  }

  /** the file this node came from */
  get file(): string {
    return this.#src.file;
  }

  get present(): boolean {
    return this.#node !== null && !(isScalar(this.#node) && this.#node.value === null);
  }

  /** 1-based line of this node (or of its parent when the node is missing) */
  get line(): number {
    return this.#src.lineCounter.linePos(this.#offset).line;
  }

  // A scalar is reported on its own line; a block mapping or list starts on the
  // line after its key, so errors about it point at the key, where the user looks.
  get #offset(): number {
    const keyOffset = this.#keyNode?.range?.[0];
    if (keyOffset !== undefined && (this.#node === null || !isScalar(this.#node))) return keyOffset;
    return this.#node?.range?.[0] ?? this.#fallbackOffset;
  }

  /** `FILE:LINE: path: message` as an AirlockError('CONFIG'). */
  fail(message: string, at?: Node | null, field: string = this.path): never {
    const offset = at?.range?.[0] ?? this.#offset;
    const line = this.#src.lineCounter.linePos(offset).line;
    const where = field === '' ? '' : `${field}: `;
    throw new AirlockError('CONFIG', `${this.#src.file}:${line}: ${where}${message}`, {
      detail: { file: this.#src.file, line, field },
    });
  }

  /** The keys of a mapping, checked against the allowed ones (unknown keys are errors). */
  map(allowed: readonly string[], what = 'a mapping', tolerated: readonly string[] = []): Map<string, YamlCursor> {
    const node = this.#node;
    if (!isMap(node)) this.fail(`must be ${what}, not ${describe(node)}`);
    const out = new Map<string, YamlCursor>();
    for (const pair of node.items as Pair<unknown, unknown>[]) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string') {
        this.fail(`keys must be strings, not ${describe(keyNode)}`, keyNode);
      }
      const field = this.child(key);
      if (!allowed.includes(key) && !tolerated.includes(key)) {
        const hint = didYouMean(key, allowed);
        const list = allowed.length > 0 ? `; known fields: ${allowed.join(', ')}` : '';
        this.fail(`unknown field${hint !== undefined ? ` (did you mean "${hint}"?)` : ''}${list}`, keyNode, field);
      }
      const value = checkNoAlias(pair.value as Node | null, this.#src, field, keyNode);
      out.set(key, new YamlCursor(value, this.#src, field, keyNode?.range?.[0] ?? this.#offset, keyNode));
    }
    return out;
  }

  /** Entries of a mapping whose keys are data (host names), not field names. */
  entries(what: string): [key: string, value: YamlCursor][] {
    const node = this.#node;
    if (!isMap(node)) this.fail(`must be a mapping of ${what}, not ${describe(node)}`);
    const out: [string, YamlCursor][] = [];
    for (const pair of node.items as Pair<unknown, unknown>[]) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string') this.fail(`keys must be ${what} (strings), not ${describe(keyNode)}`, keyNode);
      const field = this.child(key);
      const value = checkNoAlias(pair.value as Node | null, this.#src, field, keyNode);
      out.push([key, new YamlCursor(value, this.#src, field, keyNode?.range?.[0] ?? this.#offset, keyNode)]);
    }
    return out;
  }

  seq(what = 'a list'): YamlCursor[] {
    const node = this.#node;
    if (!isSeq(node)) this.fail(`must be ${what}, not ${describe(node)}`);
    return node.items.map((item, i) => {
      const n = checkNoAlias(item as Node | null, this.#src, `${this.path}[${i}]`, node);
      return new YamlCursor(n, this.#src, `${this.path}[${i}]`, this.#offset);
    });
  }

  /** A field of a mapping, read before the mapping is validated (to learn its kind). */
  peek(key: string): YamlCursor | undefined {
    const node = this.#node;
    if (!isMap(node)) return undefined;
    const pair = (node.items as Pair<unknown, unknown>[]).find((p) => isScalar(p.key) && p.key.value === key);
    if (pair === undefined) return undefined;
    const keyNode = pair.key as Node;
    const value = checkNoAlias(pair.value as Node | null, this.#src, this.child(key), keyNode);
    return new YamlCursor(value, this.#src, this.child(key), keyNode.range?.[0] ?? this.#offset, keyNode);
  }

  isSeq(): boolean {
    return isSeq(this.#node);
  }

  isMap(): boolean {
    return isMap(this.#node);
  }

  isString(): boolean {
    return isScalar(this.#node) && typeof this.#node.value === 'string';
  }

  str(what = 'a string'): string {
    const node = this.#node;
    if (!isScalar(node) || typeof node.value !== 'string') this.fail(`must be ${what}, not ${describe(node)}`);
    return node.value;
  }

  bool(): boolean {
    const node = this.#node;
    if (!isScalar(node) || typeof node.value !== 'boolean') this.fail(`must be true or false, not ${describe(node)}`);
    return node.value;
  }

  child(key: string): string {
    const k = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? key : JSON.stringify(key);
    return this.path === '' ? k : /^[A-Za-z_]/.test(k) ? `${this.path}.${k}` : `${this.path}[${k}]`;
  }
}

export interface SourceInfo {
  file: string;
  lineCounter: LineCounter;
}

/** Parse one YAML document; syntax errors become CONFIG errors with file:line:col. */
export function parseYaml(text: string, file: string): YamlCursor {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0] ?? lineCounter.linePos(first.pos[0]);
    const msg = first.message.split('\n')[0] ?? first.code;
    throw new AirlockError('CONFIG', `${file}:${pos.line}:${pos.col}: YAML syntax error: ${msg}`, {
      detail: { file, line: pos.line, col: pos.col, yaml: first.code },
    });
  }
  const src: SourceInfo = { file, lineCounter };
  const root = checkNoAlias(doc.contents as Node | null, src, '', null);
  return new YamlCursor(root, src, '');
}

/**
 * Anchors and aliases are refused: they let a small file expand into a huge one,
 * and a config that names images plainly does not need them.
 */
function checkNoAlias(node: Node | null, src: SourceInfo, field: string, parent: Node | null): Node | null {
  if (node !== null && isAlias(node)) {
    new YamlCursor(node, src, field, parent?.range?.[0] ?? 0).fail('YAML aliases (*name) are not supported here; write the value out');
  }
  return node;
}

function describe(node: Node | null): string {
  if (node === null) return 'empty';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'empty';
    if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v)}`;
    if (typeof v === 'boolean' || typeof v === 'number') return `${typeof v} ${String(v)}`;
  }
  return 'a value of another kind';
}

/** The closest known name, when it is close enough to be a likely typo. */
export function didYouMean(input: string, known: readonly string[]): string | undefined {
  const a = input.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(a, k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(a.length, best.length) / 3));
  return bestD <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
