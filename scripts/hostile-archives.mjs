#!/usr/bin/env node
// Write a set of broken and hostile archives (plus one good one) into a directory, to try
// `airlock verify` / `unpack` / `serve --archive` against by hand or in demos:
//
//   node scripts/hostile-archives.mjs OUTDIR
//
// Every archive except good.tar must be refused with exit code 4 (ARCHIVE); the rules are in
// docs/archive-format.md ("Reading an archive safely"). Built byte by byte, with no tar library,
// so that the hostile shapes are exactly what they claim to be. Needs only Node.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node scripts/hostile-archives.mjs OUTDIR\n');
  process.exit(2);
}

const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One ustar header block. */
function header({ name, size = 0, type = '0', linkname = '', badChecksum = false }) {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write('        ', 148);
  b.write(type, 156);
  if (linkname) b.write(linkname, 157, 100);
  b.write('ustar\0', 257);
  b.write('00', 263);
  let sum = 0;
  for (const x of b) sum += x;
  if (badChecksum) sum += 1;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

const file = (name, body, extra = {}) => ({ h: { name, size: Buffer.byteLength(body), ...extra }, body: Buffer.from(body) });
const special = (name, type, linkname = '') => ({ h: { name, type, linkname } });

function tar(parts, { end = true, trailing } = {}) {
  const chunks = [];
  for (const p of parts) {
    chunks.push(header(p.h));
    if (p.body) chunks.push(p.body, Buffer.alloc((512 - (p.body.length % 512)) % 512));
  }
  if (end) chunks.push(Buffer.alloc(1024));
  if (trailing) chunks.push(trailing);
  return Buffer.concat(chunks);
}

// A tiny but complete image: config + one layer + manifest, named in index.json.
const layer = Buffer.from('not really a layer, but bytes with a digest\n');
const layerDesc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length };
const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDesc.digest] } }));
const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length };
const manifest = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: [layerDesc] }),
);
const manifestDesc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length };
const index = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...manifestDesc, annotations: { 'org.opencontainers.image.ref.name': 'example.com/hostile/app:1' } }],
  }),
);
const blob = (d) => `blobs/sha256/${d.digest.slice(7)}`;
const LAYOUT = '{"imageLayoutVersion":"1.0.0"}';
const good = () => [
  file('oci-layout', LAYOUT),
  file('index.json', index),
  file(blob(manifestDesc), manifest),
  file(blob(configDesc), config),
  file(blob(layerDesc), layer),
];
const goodTar = tar(good());

const tampered = Buffer.from(layer);
tampered[0] ^= 0x20;

/** name → [bytes, what airlock must say] */
const cases = {
  good: [goodTar, 'accepted'],
  'symlink': [tar([...good(), special('blobs/sha256/evil', '2', '/etc/passwd')]), 'symbolic link'],
  'hardlink': [tar([...good(), special('blobs/sha256/evil', '1', 'oci-layout')]), 'hard link'],
  'char-device': [tar([...good(), special('null', '3')]), 'character device'],
  'block-device': [tar([...good(), special('sda', '4')]), 'block device'],
  'fifo': [tar([...good(), special('fifo', '6')]), 'FIFO'],
  'other-directory': [tar([special('etc/', '5'), ...good()]), 'directory other than blobs/'],
  'absolute-path': [tar([...good(), file('/oci-layout', LAYOUT)]), 'absolute path'],
  'dotdot-path': [tar([...good(), file('blobs/sha256/../../../etc/cron.d/x', '* * * * * root sh\n')]), '".." path segment'],
  'unexpected-name': [tar([...good(), file('run.sh', '#!/bin/sh\n')]), 'not allowed'],
  'duplicate-name': [tar([...good(), file('index.json', index)]), 'duplicate'],
  'truncated': [goodTar.subarray(0, goodTar.length - 1024 - 512 - 100), 'truncated'],
  'no-end-marker': [tar(good(), { end: false }), 'without the end-of-archive marker'],
  'trailing-garbage': [tar(good(), { trailing: Buffer.from('\0\0\0garbage') }), 'trailing data'],
  'gzip': [gzipSync(goodTar), 'archive is gzip-compressed: decompress it first'],
  'bad-checksum': [tar([...good(), { h: { name: 'x', badChecksum: true } }]), 'bad header checksum'],
  'not-a-tar': [Buffer.alloc(4096, 0x41), 'is not a tar archive'],
  'layout-version': [tar([file('oci-layout', '{"imageLayoutVersion":"2.0.0"}'), ...good().slice(1)]), 'unknown oci-layout version'],
  'huge-index': [tar([good()[0], file('index.json', Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)), ...good().slice(2)]), 'over the 4194304-byte limit'],
  'index-not-an-index': [tar([good()[0], file('index.json', manifest), ...good().slice(2)]), 'not an OCI image index'],
  'missing-blob': [tar(good().slice(0, 4)), 'which is not in the archive'],
  'tampered-blob': [tar([...good().slice(0, 4), file(blob(layerDesc), tampered)]), 'hashes to'],
};

mkdirSync(out, { recursive: true });
for (const [name, [bytes, expect]] of Object.entries(cases)) {
  writeFileSync(join(out, `${name}.tar`), bytes);
  process.stdout.write(`${name}.tar\t${expect}\n`);
}
