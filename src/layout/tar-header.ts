/**
 * A strict parser for the tar headers the archive reader accepts: POSIX ustar (and GNU's
 * "ustar  " magic) 512-byte headers plus pax extended headers ('x') for long names and sizes.
 * POSIX.1-2001 pax(1) "ustar Interchange Format" and "pax Extended Header".
 */

export const BLOCK = 512;

export interface RawHeader {
  name: string;
  size: number;
  /** the typeflag character ('0', '5', 'x', ...; '\0' is reported as '0') */
  type: string;
  linkname: string;
}

export class TarFormatError extends Error {}

/** Sum of the header bytes with the checksum field counted as spaces (ustar "chksum"). */
function checksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum;
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function str(block: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && block[end] !== 0) end++;
  return Buffer.from(block.buffer, block.byteOffset + off, end - off).toString('utf8');
}

/** An octal numeric field (leading spaces or zeros, terminated by space or NUL), or GNU base-256. */
function num(block: Uint8Array, off: number, len: number, field: string): number {
  const first = block[off]!;
  if (first & 0x80) {
    // base-256: 0x80 marks a positive number; 0xff (negative) is never a valid size.
    if (first !== 0x80) throw new TarFormatError(`negative ${field}`);
    let v = 0;
    for (let i = off + 1; i < off + len; i++) {
      v = v * 256 + block[i]!;
      if (!Number.isSafeInteger(v)) throw new TarFormatError(`${field} is too large`);
    }
    return v;
  }
  let i = off;
  const end = off + len;
  while (i < end && block[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new TarFormatError(`${field} is not an octal number`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) throw new TarFormatError(`${field} has characters after its number`);
  }
  if (digits === 0) return 0;
  return v;
}

/** Parse one header block; throws TarFormatError when it is not a valid ustar header. */
export function parseHeader(block: Uint8Array): RawHeader {
  // "ustar\0" + "00" (POSIX) or "ustar " + " \0" (GNU); anything else (v7, garbage) is refused.
  const magic = Buffer.from(block.buffer, block.byteOffset + 257, 5).toString('latin1');
  if (magic !== 'ustar' || (block[262] !== 0 && block[262] !== 0x20)) throw new TarFormatError('not a ustar header');
  const stored = num(block, 148, 8, 'checksum');
  if (stored !== checksum(block)) throw new TarFormatError('bad header checksum');
  const gnu = block[262] === 0x20; // "ustar " + " \0": the prefix field holds times instead
  let name = str(block, 0, 100);
  if (!gnu) {
    const prefix = str(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const flag = block[156]!;
  return {
    name,
    size: num(block, 124, 12, 'size'),
    type: flag === 0 ? '0' : String.fromCharCode(flag),
    linkname: str(block, 157, 100),
  };
}

/**
 * Parse pax extended header records: "<len> <key>=<value>\n", where <len> counts the whole record.
 * Throws on any malformed record rather than guessing.
 */
export function parsePax(body: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0 || sp - off > 20) throw new TarFormatError('malformed pax record length');
    const lenText = buf.toString('latin1', off, sp);
    if (!/^[1-9][0-9]*$/.test(lenText)) throw new TarFormatError('malformed pax record length');
    const len = Number(lenText);
    if (off + len > buf.length || buf[off + len - 1] !== 0x0a) throw new TarFormatError('pax record runs past its header');
    const rec = buf.toString('utf8', sp + 1, off + len - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw new TarFormatError('pax record without a key');
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

/** Bytes a body of `size` takes in the archive, padded to the block size. */
export function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}
