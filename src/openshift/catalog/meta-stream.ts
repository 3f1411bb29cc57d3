import { parseDocument } from 'yaml';
import { catalogError } from './errors.js';

/**
 * Split one catalog file into its objects, as opm's loader does
 * (operator-registry alpha/declcfg WalkMetasReader, k8s YAMLOrJSONDecoder):
 *
 * - when the first non-space byte is `{`, the file is a stream of concatenated JSON
 *   values (opm writes one indented object after another, no array around them); each
 *   value must be an object;
 * - otherwise it is YAML, documents separated by lines that start with `---` (only
 *   spaces or a comment may follow on that line); each document must be a mapping.
 *   Documents that hold only blanks or comments are skipped.
 *
 * Only one object is in memory at a time: the bytes of the object being read, then its
 * parsed value, handed to `onObject` and dropped. A catalog file can be hundreds of
 * megabytes (every bundle carries its CSV and CRDs as `olm.bundle.object` properties);
 * one object is at most `maxObjectBytes`.
 */
export interface MetaStreamOptions {
  /** the file's path in the catalog, for messages */
  readonly file: string;
  /** refuse an object larger than this (bytes); default 64 MiB */
  readonly maxObjectBytes?: number;
  /**
   * One object. `raw` is its exact bytes when the file is JSON (so an object kept as
   * it is can be written out byte for byte); undefined for YAML documents.
   */
  readonly onObject: (value: Record<string, unknown>, index: number, raw?: Buffer) => void;
}

export const DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024;

const enum Mode {
  Sniff,
  Json,
  Yaml,
}

// Go's unicode.IsSpace for the bytes that can start a UTF-8 file.
const isSpace = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0b || b === 0x0c || b === 0x0d;

export class MetaStreamDecoder {
  readonly #file: string;
  readonly #max: number;
  readonly #onObject: MetaStreamOptions['onObject'];
  #mode = Mode.Sniff;
  #blank: Buffer[] = [];
  #blankBytes = 0;
  #index = 0;
  /** byte offset in the file of the start of the current chunk */
  #offset = 0;
  // JSON scanner state
  #depth = 0;
  #inString = false;
  #escape = false;
  #parts: Buffer[] = [];
  #partBytes = 0;
  #objStart = 0;
  // YAML state
  #line: Buffer[] = [];
  #lineNo = 1;
  #docLine = 1;
  #doc: Buffer[] = [];
  #docBytes = 0;

  constructor(opts: MetaStreamOptions) {
    this.#file = opts.file;
    this.#max = opts.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES;
    this.#onObject = opts.onObject;
  }

  write(chunk: Buffer): void {
    if (this.#mode === Mode.Sniff) {
      let start = 0;
      while (start < chunk.length && isSpace(chunk[start]!)) start++;
      if (start === chunk.length) {
        // all blank so far: keep it (YAML indentation of the first line may start here)
        this.#blank.push(Buffer.from(chunk));
        this.#blankBytes += chunk.length;
        if (this.#blankBytes > this.#max) this.#fail(`starts with more than ${this.#max} bytes of white space`);
        return;
      }
      this.#mode = chunk[start] === 0x7b ? Mode.Json : Mode.Yaml;
      const blank = this.#blank;
      this.#blank = [];
      if (this.#mode === Mode.Json) {
        this.#offset += this.#blankBytes;
        this.#json(chunk, start);
      } else {
        for (const b of blank) this.#yaml(b);
        this.#yaml(chunk);
      }
      this.#offset += chunk.length;
      return;
    }
    if (this.#mode === Mode.Json) this.#json(chunk, 0);
    else this.#yaml(chunk);
    this.#offset += chunk.length;
  }

  /** The file ended: finish the last object, or fail if it was cut short. */
  end(): void {
    if (this.#mode === Mode.Json) {
      if (this.#depth > 0 || this.#inString) this.#fail(`ends inside a JSON object (started at byte ${this.#objStart})`);
    } else if (this.#mode === Mode.Yaml) {
      if (this.#line.length > 0) this.#yamlLine(Buffer.concat(this.#line));
      this.#line = [];
      this.#flushDoc();
    }
  }

  #fail(why: string): never {
    throw catalogError('syntax', `catalog file ${this.#file}: ${why}`, { file: this.#file });
  }

  #json(chunk: Buffer, from: number): void {
    let i = from;
    let segStart = this.#depth > 0 ? from : -1;
    const n = chunk.length;
    while (i < n) {
      const b = chunk[i]!;
      if (this.#depth === 0) {
        if (isSpace(b)) {
          i++;
          continue;
        }
        if (b !== 0x7b) this.#fail(`byte ${this.#offset + i}: expected a JSON object ("{"), found ${JSON.stringify(String.fromCharCode(b))}; a JSON catalog file is a stream of objects`);
        this.#depth = 1;
        this.#objStart = this.#offset + i;
        segStart = i;
        i++;
        continue;
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (b === 0x5c) this.#escape = true;
        else if (b === 0x22) this.#inString = false;
        i++;
        continue;
      }
      if (b === 0x22) this.#inString = true;
      else if (b === 0x7b || b === 0x5b) this.#depth++;
      else if (b === 0x7d || b === 0x5d) {
        this.#depth--;
        if (this.#depth === 0) {
          this.#take(chunk.subarray(segStart, i + 1));
          segStart = -1;
          this.#emitJson();
        }
      }
      i++;
    }
    if (this.#depth > 0 && segStart >= 0) this.#take(chunk.subarray(segStart));
  }

  #take(part: Buffer): void {
    this.#partBytes += part.length;
    if (this.#partBytes > this.#max) this.#fail(`the object at byte ${this.#objStart} is larger than the ${this.#max}-byte limit for one catalog object`);
    // copy: the chunk's memory belongs to the stream
    this.#parts.push(Buffer.from(part));
  }

  #emitJson(): void {
    const bytes = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#partBytes);
    this.#parts = [];
    this.#partBytes = 0;
    let v: unknown;
    try {
      v = JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      this.#fail(`the object at byte ${this.#objStart} is not valid JSON (${(e as Error).message})`);
    }
    this.#emit(v, `the object at byte ${this.#objStart}`, bytes);
  }

  #emit(v: unknown, where: string, raw?: Buffer): void {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.#fail(`${where} is not an object`);
    this.#onObject(v as Record<string, unknown>, this.#index++, raw);
  }

  #yaml(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) {
        if (start < chunk.length) this.#line.push(Buffer.from(chunk.subarray(start)));
        this.#lineBytesCheck();
        return;
      }
      const piece = chunk.subarray(start, nl + 1);
      const line = this.#line.length > 0 ? Buffer.concat([...this.#line, piece]) : piece;
      this.#line = [];
      this.#yamlLine(line);
      start = nl + 1;
    }
  }

  #lineBytesCheck(): void {
    let n = this.#docBytes;
    for (const l of this.#line) n += l.length;
    if (n > this.#max) this.#fail(`the YAML document at line ${this.#docLine} is larger than the ${this.#max}-byte limit for one catalog object`);
  }

  #yamlLine(line: Buffer): void {
    // k8s YAMLReader: a line that starts with "---" ends the document; only spaces or a comment may follow.
    if (line.length >= 3 && line[0] === 0x2d && line[1] === 0x2d && line[2] === 0x2d) {
      const rest = line.subarray(3).toString('utf8').trim();
      if (rest !== '' && !rest.startsWith('#')) this.#fail(`line ${this.#lineNo}: a document separator "---" must stand alone on its line`);
      this.#flushDoc();
      this.#lineNo++;
      this.#docLine = this.#lineNo;
      return;
    }
    this.#doc.push(Buffer.from(line));
    this.#docBytes += line.length;
    if (this.#docBytes > this.#max) this.#fail(`the YAML document at line ${this.#docLine} is larger than the ${this.#max}-byte limit for one catalog object`);
    this.#lineNo++;
  }

  #flushDoc(): void {
    if (this.#doc.length === 0) return;
    const text = Buffer.concat(this.#doc, this.#docBytes).toString('utf8');
    this.#doc = [];
    this.#docBytes = 0;
    // blanks and comments only: nothing to load
    if (/^(?:\s*(?:#.*)?(?:\r?\n|$))*$/.test(text)) return;
    // YAML 1.1, as sigs.k8s.io/yaml (go-yaml v2) reads it; aliases are capped by the library.
    const doc = parseDocument(text, { version: '1.1', prettyErrors: false, uniqueKeys: false });
    const err = doc.errors[0];
    if (err !== undefined) {
      const line = this.#docLine + (err.linePos?.[0]?.line ?? 1) - 1;
      this.#fail(`line ${line}: YAML syntax error: ${err.message.split('\n')[0] ?? err.code}`);
    }
    let v: unknown;
    try {
      v = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      this.#fail(`the YAML document at line ${this.#docLine}: ${(e as Error).message}`);
    }
    this.#emit(v, `the YAML document at line ${this.#docLine}`);
  }
}
