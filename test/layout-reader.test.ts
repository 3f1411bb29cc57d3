import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readAll } from '../src/content/read.js';
import { AirlockError } from '../src/errors.js';
import { digestOf } from '../src/oci/digest.js';
import type { Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { ArchiveReader, verifySidecar } from '../src/layout/reader.js';

// ---- a small tar header writer, so the hostile archives are built byte by byte ----

interface Hdr {
  name: string;
  size?: number;
  /** typeflag character */
  type?: string;
  linkname?: string;
  prefix?: string;
  /** corrupt the checksum after computing it */
  badChecksum?: boolean;
  /** write the size as GNU base-256 */
  base256?: boolean;
}

function header(h: Hdr): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  const size = h.size ?? 0;
  if (h.base256) {
    b[124] = 0x80;
    let v = size;
    for (let i = 135; i > 124; i--) {
      b[i] = v % 256;
      v = Math.floor(v / 256);
    }
  } else {
    b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  }
  b.write('00000000000\0', 136);
  b.write('        ', 148);
  b.write(h.type ?? '0', 156);
  if (h.linkname) b.write(h.linkname, 157, 100);
  b.write('ustar\0', 257);
  b.write('00', 263);
  if (h.prefix) b.write(h.prefix, 345, 155);
  let sum = 0;
  for (const x of b) sum += x;
  if (h.badChecksum) sum += 1;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

interface Part {
  h: Hdr;
  body?: Buffer | string;
}

function entry(name: string, body: Buffer | string, extra: Partial<Hdr> = {}): Part {
  return { h: { name, size: Buffer.byteLength(body), ...extra }, body };
}

function pax(records: Record<string, string>): Part {
  let text = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    text += `${len}${rest}`;
  }
  return { h: { name: 'PaxHeader', type: 'x', size: Buffer.byteLength(text) }, body: text };
}

function tarOf(parts: Part[], opts: { end?: boolean; trailing?: Buffer } = {}): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    out.push(header(p.h));
    if (p.body !== undefined) {
      const body = Buffer.from(p.body);
      out.push(body, pad(body.length));
    }
  }
  if (opts.end !== false) out.push(Buffer.alloc(1024));
  if (opts.trailing) out.push(opts.trailing);
  return Buffer.concat(out);
}

const LAYOUT = '{"imageLayoutVersion":"1.0.0"}';
const layerBytes = Buffer.from('layer bytes\n');
const layer: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(layerBytes), size: layerBytes.length };
const configBytes = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
const config: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(configBytes), size: configBytes.length };
const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }));
const manifest: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(manifestBytes), size: manifestBytes.length };
const indexBytes = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'example.com/app:1' } }],
  }),
);
const blobName = (d: Descriptor): string => `blobs/sha256/${d.digest.slice(7)}`;

function goodParts(): Part[] {
  return [
    entry('oci-layout', LAYOUT),
    entry('index.json', indexBytes),
    entry(blobName(manifest), manifestBytes),
    entry(blobName(config), configBytes),
    entry(blobName(layer), layerBytes),
  ];
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-reader-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function put(bytes: Buffer, name = 'a.tar'): Promise<string> {
  const f = path.join(dir, name);
  await fsp.writeFile(f, bytes);
  return f;
}

async function openError(bytes: Buffer, opts: { maxEntries?: number } = {}): Promise<AirlockError> {
  const f = await put(bytes);
  const e = await ArchiveReader.open(f, opts).then(
    async (r) => {
      await r.close();
      return undefined;
    },
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AirlockError);
  return e as AirlockError;
}

describe('ArchiveReader', () => {
  describe('when the archive is well-formed', () => {
    it('builds the entry table by seeking, resolves ref names and streams verified blobs', async () => {
      const f = await put(tarOf(goodParts()));
      const r = await ArchiveReader.open(f);
      try {
        const entries = [...r.entries()];
        expect(entries.map((e) => e.name)).toEqual(['oci-layout', 'index.json', blobName(manifest), blobName(config), blobName(layer)]);
        expect(entries[0]).toEqual({ name: 'oci-layout', offset: 512, size: LAYOUT.length });
        expect(entries[1]!.offset).toBe(512 * 3);
        expect(r.indexBytes.equals(indexBytes)).toBe(true);
        expect(await r.resolve('example.com/app:1')).toMatchObject({ digest: manifest.digest });
        expect(await r.resolve(manifest.digest)).toMatchObject({ digest: manifest.digest });
        await expect(r.resolve('example.com/app:2')).rejects.toMatchObject({ code: 'NOT_FOUND' });
        expect((await readAll(await r.fetch(layer), 1024)).equals(layerBytes)).toBe(true);
        expect(await r.exists(layer)).toBe(true);
        expect(await r.exists({ ...layer, digest: digestOf(Buffer.from('x')) })).toBe(false);
        await expect(r.fetch({ ...layer, size: layer.size + 1 })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
        await r.verifyBlobs({ concurrency: 2 });
        await r.verifyGraph();
      } finally {
        await r.close();
      }
    });

    it('accepts ./ prefixes, blobs/ directory entries, pax path and size records and base-256 sizes', async () => {
      const parts: Part[] = [
        { h: { name: './', type: '5' } },
        entry('./oci-layout', LAYOUT),
        { h: { name: 'blobs/', type: '5' } },
        { h: { name: 'blobs/sha256/', type: '5' } },
        pax({ path: 'index.json', mtime: '1700000000.5' }),
        entry('PaxHeader/index.json', indexBytes),
        pax({ size: String(manifestBytes.length) }),
        { h: { name: blobName(manifest), size: 0 }, body: manifestBytes },
        entry(blobName(config), configBytes, { base256: true }),
        entry(blobName(layer).slice(13), layerBytes, { prefix: 'blobs/sha256' }),
      ];
      const f = await put(tarOf(parts, { trailing: Buffer.alloc(8192) }));
      const r = await ArchiveReader.open(f);
      try {
        expect([...r.entries()].map((e) => e.name)).toEqual(['oci-layout', 'index.json', blobName(manifest), blobName(config), blobName(layer)]);
        await r.verifyBlobs();
        await r.verifyGraph();
      } finally {
        await r.close();
      }
    });
  });

  describe('when the archive is hostile or broken, open() refuses it with ARCHIVE', () => {
    const cases: Array<[string, () => Buffer, RegExp, { maxEntries?: number }?]> = [
      ['a symbolic link', () => tarOf([...goodParts(), { h: { name: 'blobs/sha256/evil', type: '2', linkname: '/etc/passwd' } }]), /symbolic link/],
      ['a hard link', () => tarOf([...goodParts(), { h: { name: 'blobs/sha256/evil', type: '1', linkname: 'oci-layout' } }]), /hard link/],
      ['a character device', () => tarOf([...goodParts(), { h: { name: 'null', type: '3' } }]), /character device/],
      ['a block device', () => tarOf([...goodParts(), { h: { name: 'sda', type: '4' } }]), /block device/],
      ['a FIFO', () => tarOf([...goodParts(), { h: { name: 'fifo', type: '6' } }]), /FIFO/],
      ['a directory other than blobs/', () => tarOf([{ h: { name: 'etc/', type: '5' } }, ...goodParts()]), /"etc\/".*directory other than blobs/],
      ['an absolute path', () => tarOf([...goodParts(), entry('/oci-layout', LAYOUT)]), /"\/oci-layout".*absolute path/],
      ['a .. path', () => tarOf([...goodParts(), entry('blobs/sha256/../../../etc/passwd', 'x')]), /"blobs\/sha256\/..\/..\/..\/etc\/passwd".*"\.\." path segment/],
      ['a .. path hidden in a pax header', () => tarOf([...goodParts(), pax({ path: '../escape' }), entry('innocent', 'x')]), /"\.\.\/escape".*"\.\." path segment/],
      ['a name outside the layout', () => tarOf([...goodParts(), entry('run.sh', '#!/bin/sh\n')]), /"run\.sh".*not allowed/],
      ['a blob name that is not a digest', () => tarOf([...goodParts(), entry('blobs/sha256/ABCDEF', 'x')]), /"blobs\/sha256\/ABCDEF".*not allowed/],
      ['a duplicate name', () => tarOf([...goodParts(), entry('index.json', indexBytes)]), /"index\.json".*duplicate/],
      ['an entry running past the end of the file', () => tarOf([...goodParts(), entry(blobName(layer).replace(/.$/, '0'), Buffer.alloc(4096))])
        .subarray(0, tarOf(goodParts(), { end: false }).length + 512 + 1000), /declares 4096 bytes.*truncated/],
      ['a missing end-of-archive marker', () => tarOf(goodParts(), { end: false }), /without the end-of-archive marker.*truncated/],
      ['trailing garbage after the end-of-archive marker', () => tarOf(goodParts(), { trailing: Buffer.from('\0\0\0garbage') }), /trailing data at offset/],
      ['gzip compression', () => gzipSync(tarOf(goodParts())), /archive is gzip-compressed: decompress it first/],
      ['a bad header checksum', () => tarOf([...goodParts(), { h: { name: 'oci-layout2', badChecksum: true } }]), /damaged tar header at offset \d+ \(bad header checksum\)/],
      ['bytes that are not a tar at all', () => Buffer.alloc(4096, 0x41), /is not a tar archive/],
      ['a GNU long-name header', () => tarOf([...goodParts(), { h: { name: '././@LongLink', type: 'L', size: 5 }, body: 'abcde' }]), /GNU long-name header/],
      ['a pax header that is too large', () => tarOf([...goodParts(), { h: { name: 'PaxHeader', type: 'x', size: 1 << 20 }, body: Buffer.alloc(1 << 20, 0x31) }]), /pax header of 1048576 bytes is over/],
      ['more entries than the cap', () => tarOf(goodParts()), /more than 3 entries/, { maxEntries: 3 }],
      ['an unknown oci-layout version', () => tarOf([entry('oci-layout', '{"imageLayoutVersion":"2.0.0"}'), ...goodParts().slice(1)]), /unknown oci-layout version "2\.0\.0"/],
      ['no oci-layout file', () => tarOf(goodParts().slice(1)), /has no oci-layout file/],
      ['an index.json over 4 MiB', () => tarOf([...goodParts().slice(0, 1), entry('index.json', Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)), ...goodParts().slice(2)]), /index\.json is 4194305 bytes, over the 4194304-byte limit/],
      ['an index.json that is not an index', () => tarOf([goodParts()[0]!, entry('index.json', manifestBytes), ...goodParts().slice(2)]), /index\.json is not an OCI image index/],
      ['an index.json that is not JSON', () => tarOf([goodParts()[0]!, entry('index.json', 'not json'), ...goodParts().slice(2)]), /index\.json: is not valid JSON/],
    ];
    for (const [what, build, message, opts] of cases) {
      it(`refuses ${what}`, async () => {
        const e = await openError(build(), opts);
        expect(e.code).toBe('ARCHIVE');
        expect(e.side).toBe('archive');
        expect(e.message).toMatch(message);
        expect(e.message.split('\n')).toHaveLength(1);
      });
    }
  });

  describe('when the content does not match the layout', () => {
    it('verifyBlobs() names a blob whose bytes do not hash to its name', async () => {
      const evil = Buffer.from(layerBytes);
      evil[0] = 0x4c;
      const parts = goodParts();
      parts[4] = entry(blobName(layer), evil);
      const r = await ArchiveReader.open(await put(tarOf(parts)));
      try {
        const e = await r.verifyBlobs().catch((x: unknown) => x);
        expect(e).toMatchObject({ code: 'ARCHIVE' });
        expect((e as Error).message).toContain(`${blobName(layer)} hashes to ${digestOf(evil)}`);
        // fetch() of the same blob errors instead of ending cleanly
        await expect(readAll(await r.fetch(layer), 1024)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
      } finally {
        await r.close();
      }
    });

    it('verifyGraph() names a blob reachable from index.json that is missing', async () => {
      const r = await ArchiveReader.open(await put(tarOf(goodParts().slice(0, 4))));
      try {
        const e = await r.verifyGraph().catch((x: unknown) => x);
        expect(e).toMatchObject({ code: 'ARCHIVE' });
        expect((e as Error).message).toContain(`manifest ${manifest.digest} names ${layer.digest}`);
      } finally {
        await r.close();
      }
    });

    it('verifyGraph() refuses a blob whose size differs from its descriptor', async () => {
      const parts = goodParts();
      parts[4] = entry(blobName(layer), Buffer.concat([layerBytes, Buffer.from('!')]));
      const r = await ArchiveReader.open(await put(tarOf(parts)));
      try {
        await expect(r.verifyGraph()).rejects.toThrow(new RegExp(`says ${layer.digest} is ${layer.size} bytes`));
      } finally {
        await r.close();
      }
    });
  });
});

describe('verifySidecar', () => {
  it('is absent without FILE.sha256, ok when it matches, ARCHIVE when it does not', async () => {
    const bytes = tarOf(goodParts());
    const f = await put(bytes);
    expect(await verifySidecar(f)).toBe('absent');
    await fsp.writeFile(`${f}.sha256`, `${digestOf(bytes).slice(7)}  a.tar\n`);
    expect(await verifySidecar(f)).toBe('ok');
    const changed = Buffer.from(bytes);
    changed[600] = changed[600]! ^ 1;
    await fsp.writeFile(f, changed);
    const e = await verifySidecar(f).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'ARCHIVE' });
    expect((e as Error).message).toMatch(/a\.tar\.sha256 says [0-9a-f]{64}: the archive was changed or damaged in transit/);
    await fsp.writeFile(`${f}.sha256`, 'nonsense\n');
    await expect(verifySidecar(f)).rejects.toThrow(/is not a sha256sum line/);
  });
});
