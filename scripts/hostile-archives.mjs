#!/usr/bin/env node
// Write a set of broken and hostile archives (plus one good one) into a directory, to try
// `airlock verify` / `unpack` / `serve --archive` against by hand or in demos:
//
//   node scripts/hostile-archives.mjs OUTDIR [--from PACKED.tar]
//
// With --from, it also derives cases from a real archive written by `airlock pack` (they need a valid
// inventory, so they pass every tar check and fail exactly at the inventory or the sidecar); their
// names start with `packed-`. Those are refused by checkArchive (verify, unpack), not by the bare
// layout reader.
//
// Every archive except good.tar must be refused with exit code 4 (ARCHIVE); the rules are in
// docs/archive-format.md ("Reading an archive safely"). Built byte by byte, with no tar library,
// so that the hostile shapes are exactly what they claim to be. Needs only Node.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const out = process.argv[2];
const fromIdx = process.argv.indexOf('--from');
const from = fromIdx > 0 ? process.argv[fromIdx + 1] : undefined;
if (!out || out.startsWith('--') || (fromIdx > 0 && !from)) {
  process.stderr.write('usage: node scripts/hostile-archives.mjs OUTDIR [--from PACKED.tar]\n');
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
  // the same blob name twice, the second copy with other bytes: whichever a reader kept, one lies
  'duplicate-name-different-content': [tar([...good(), file(blob(layerDesc), tampered)]), 'duplicate'],
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
  // 077777777777 octal: the largest size a ustar header holds (8 GiB - 1), over a file of a few blocks
  'huge-entry': [tar([{ h: { name: 'oci-layout', size: 0o77777777777 }, body: Buffer.from(LAYOUT) }], { end: true }), 'the archive is truncated'],
  'huge-manifest': (() => {
    // a well-formed manifest padded with whitespace past the 4 MiB cap, named by its true digest
    const big = Buffer.concat([manifest, Buffer.alloc(4 * 1024 * 1024, 0x20)]);
    const d = { ...manifestDesc, digest: sha(big), size: big.length };
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [d] }));
    return [tar([good()[0], file('index.json', idx), file(blob(d), big), ...good().slice(3)]), 'over the 4194304-byte limit'];
  })(),
  'deep-json': (() => {
    const depth = 100_000;
    const idx = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    return [tar([good()[0], file('index.json', idx), ...good().slice(2)]), 'non-string annotations'];
  })(),
};

if (from) Object.assign(cases, derived(readFileSync(from)));

mkdirSync(out, { recursive: true });
for (const [name, [bytes, expect, sidecar]] of Object.entries(cases)) {
  writeFileSync(join(out, `${name}.tar`), bytes);
  if (sidecar) writeFileSync(join(out, `${name}.tar.sha256`), sidecar);
  process.stdout.write(`${name}.tar\t${expect}\n`);
}

/** The entries of a tar written by airlock pack (ustar, pax 'x' headers for long names). */
function untar(buf) {
  const entries = [];
  let off = 0;
  let paxPath;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const str = (a, n) => h.subarray(a, a + n).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(str(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = str(345, 155);
    const body = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      paxPath = m?.[1];
      continue;
    }
    const name = paxPath ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    paxPath = undefined;
    entries.push({ name, body: Buffer.from(body) });
  }
  return entries;
}

/**
 * Cases made from a real packed archive: the tar and the layout stay valid, and only the
 * inventory (re-hashed, so every digest still matches) or the sidecar lies.
 */
function derived(packed) {
  const entries = untar(packed);
  const get = (name) => entries.find((e) => e.name === name)?.body;
  const blobName = (digest) => `blobs/sha256/${digest.slice(7)}`;
  const idx = JSON.parse(get('index.json').toString('utf8'));
  const invEntry = idx.manifests.find((d) => d.annotations?.['dev.airlock.kind'] === 'inventory');
  const invManifest = JSON.parse(get(blobName(invEntry.digest)).toString('utf8'));
  const inventory = JSON.parse(get(blobName(invManifest.layers[0].digest)).toString('utf8'));
  const rebuild = (editInventory, editIndex = () => undefined) => {
    const inv = structuredClone(inventory);
    editInventory(inv);
    const invBytes = Buffer.from(JSON.stringify(inv));
    const man = structuredClone(invManifest);
    man.layers[0] = { ...man.layers[0], digest: sha(invBytes), size: invBytes.length };
    const manBytes = Buffer.from(JSON.stringify(man));
    const index2 = structuredClone(idx);
    const e = index2.manifests.find((d) => d.digest === invEntry.digest);
    e.digest = sha(manBytes);
    e.size = manBytes.length;
    editIndex(index2);
    const drop = new Set([blobName(invEntry.digest), blobName(invManifest.layers[0].digest), 'index.json']);
    return tar([
      ...entries.filter((x) => !drop.has(x.name)).map((x) => file(x.name, x.body)),
      file('index.json', JSON.stringify(index2)),
      file(blobName(sha(invBytes)), invBytes),
      file(blobName(sha(manBytes)), manBytes),
    ]);
  };
  const plain = tar(entries.map((x) => file(x.name, x.body)));
  const result = {};
  result['packed-wrong-sidecar'] = [plain, 'says', `${'0'.repeat(64)}  packed-wrong-sidecar.tar\n`];

  const tagEdges = inventory.referrers.filter((r) => r.tag !== undefined);
  if (tagEdges.length >= 2) {
    const [a, b] = tagEdges;
    // A's subject is B and B's is A: neither can be pushed after its subject
    const setSubject = (index2, digest, subject) => {
      for (const d of index2.manifests) if (d.digest === digest) d.annotations['dev.airlock.subject'] = subject;
    };
    result['packed-referrer-cycle'] = [
      rebuild(
        (inv) => {
          for (const r of inv.referrers) {
            if (r.digest === a.digest) r.subject = b.digest;
            else if (r.digest === b.digest) r.subject = a.digest;
          }
        },
        (index2) => {
          setSubject(index2, a.digest, b.digest);
          setSubject(index2, b.digest, a.digest);
        },
      ),
      'cycle',
    ];
  }
  const outside = `sha256:${'e'.repeat(64)}`;
  result['packed-subject-outside'] = [
    rebuild((inv) => {
      inv.referrers[0].subject = outside;
    }),
    'the subject is not in the archive',
  ];
  result['packed-edge-without-manifest'] = [
    rebuild((inv) => {
      inv.referrers.push({ ...inv.referrers[0], digest: `sha256:${'d'.repeat(64)}` });
    }),
    'the referrer manifest is not in the archive',
  ];
  const root = inventory.trustRoots[0];
  if (root) {
    // same name and size, other bytes: the key an attacker would rather have you trust
    result['packed-altered-trust-root'] = [
      tar(
        entries.map((x) => {
          if (x.name !== blobName(root.digest)) return file(x.name, x.body);
          const b = Buffer.from(x.body);
          b[Math.floor(b.length / 2)] ^= 0x01;
          return file(x.name, b);
        }),
      ),
      root.digest.slice(7, 19),
    ];
  }
  return result;
}
