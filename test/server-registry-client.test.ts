/**
 * The registry client (src/registry) runs the same scenarios against Debian's
 * Distribution 2.8 and against `airlock serve` with the referrers API on and off,
 * and every observable result is the same (the referrers API itself aside, which is
 * the point of the on/off switch). Content is deterministic so results compare.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll } from '../src/content/read.js';
import { isAirlockError } from '../src/errors.js';
import { digestOf } from '../src/oci/digest.js';
import { encodeJson, type Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { fallbackTag } from '../src/oci/referrers.js';
import { noCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import type { Repository } from '../src/registry/repository.js';
import { startDistribution } from './support/distribution.js';
import { startTestServer } from './server-helpers.js';

/** Deterministic pseudo-random bytes, so two registries receive identical content. */
function bytesOf(label: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let block = createHash('sha256').update(label).digest();
  for (let off = 0; off < n; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

function blob(bytes: Buffer, mediaType: string = MediaType.OciLayerGzip): { desc: Descriptor; bytes: Buffer } {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

function manifestOf(v: unknown, mediaType: string): { desc: Descriptor; bytes: Buffer } {
  const bytes = encodeJson(v);
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

function makeImage(label: string, layerSizes: number[], mediaType: string = MediaType.OciManifest) {
  const docker = mediaType === MediaType.DockerManifest;
  const config = blob(encodeJson({ architecture: 'amd64', os: 'linux', config: { Labels: { label } } }), docker ? MediaType.DockerConfig : MediaType.OciConfig);
  const layers = layerSizes.map((n, i) => blob(bytesOf(`${label}/${i}`, n), docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip));
  // a trailing space: a registry that re-serialized would change the digest
  const bytes = Buffer.from(`${JSON.stringify({ schemaVersion: 2, mediaType, config: config.desc, layers: layers.map((l) => l.desc), annotations: { label } }, null, 1)} `);
  return { config, layers, manifest: { desc: { mediaType, digest: digestOf(bytes), size: bytes.length } as Descriptor, bytes } };
}

async function pushImage(repo: Repository, img: ReturnType<typeof makeImage>, tag?: string): Promise<void> {
  await repo.push(img.config.desc, img.config.bytes);
  for (const l of img.layers) await repo.push(l.desc, Readable.from([l.bytes]));
  await repo.pushManifest(img.manifest.desc, img.manifest.bytes, tag !== undefined ? { tag } : {});
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    if (isAirlockError(e)) return `${e.code}${/MANIFEST_UNKNOWN/.test(e.message) ? ' MANIFEST_UNKNOWN' : ''}`;
    throw e;
  }
}

const hash = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Everything a client can observe, as plain data. */
type Observations = Record<string, unknown>;

async function scenario(client: RegistryClient, host: string, requests: string[]): Promise<Observations> {
  const o: Observations = {};

  // pull and push
  const one = client.repository(host, 'app/one');
  const img = makeImage('one', [1024, 2048]);
  await pushImage(one, img, 'v1');
  const byTag = await one.fetchManifest('v1');
  o.byTag = { bytes: hash(byTag.bytes), desc: byTag.desc };
  o.byDigest = hash((await one.fetchManifest(img.manifest.desc.digest)).bytes);
  o.resolved = await one.resolve('v1');
  o.blobs = await Promise.all([img.config, ...img.layers].map(async (l) => [hash(await readAll(await one.fetch(l.desc), 1 << 20)), await one.exists(l.desc)]));
  o.unknownExists = await one.exists(blob(bytesOf('absent', 10)).desc);

  const docker = client.repository(host, 'app/docker');
  const dimg = makeImage('docker', [512], MediaType.DockerManifest);
  await pushImage(docker, dimg, 'latest');
  const dgot = await docker.fetchManifest('latest');
  o.docker = { bytes: hash(dgot.bytes), mediaType: dgot.desc.mediaType };

  // an index after its children
  const multi = client.repository(host, 'app/multi');
  const a = makeImage('amd64', [300]);
  const b = makeImage('arm64', [400]);
  await pushImage(multi, a);
  await pushImage(multi, b);
  const index = manifestOf(
    {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { ...a.manifest.desc, platform: { architecture: 'amd64', os: 'linux' } },
        { ...b.manifest.desc, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    },
    MediaType.OciIndex,
  );
  await multi.pushManifest(index.desc, index.bytes, { tag: 'multi' });
  const igot = await multi.fetchManifest('multi');
  o.index = { bytes: hash(igot.bytes), mediaType: igot.desc.mediaType };

  // referrers: pushed with a subject, then the fallback tag index
  const signed = client.repository(host, 'app/signed');
  const simg = makeImage('signed', [100]);
  await pushImage(signed, simg, 'v1');
  const empty = blob(Buffer.from('{}'), MediaType.OciEmpty);
  const payload = blob(Buffer.from('{"sig":"x"}'), MediaType.SigstoreBundle03);
  await signed.push(empty.desc, empty.bytes);
  await signed.push(payload.desc, payload.bytes);
  const artifact = manifestOf(
    { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: MediaType.SigstoreBundle03, config: empty.desc, layers: [payload.desc], subject: simg.manifest.desc },
    MediaType.OciManifest,
  );
  const { subjectAccepted } = await signed.pushManifest(artifact.desc, artifact.bytes);
  o.referrers = { subjectAccepted, beforeFallback: await signed.referrers(simg.manifest.desc), api: signed.referrersApi() };
  o.artifactBytes = hash((await signed.fetchManifest(artifact.desc.digest)).bytes);
  const entry: Descriptor = { ...artifact.desc, artifactType: MediaType.SigstoreBundle03 };
  const fallback = manifestOf({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [entry] }, MediaType.OciIndex);
  await signed.pushManifest(fallback.desc, fallback.bytes, { tag: fallbackTag(simg.manifest.desc.digest) });
  o.afterFallback = await signed.referrers(simg.manifest.desc);
  o.filtered = await signed.referrers(simg.manifest.desc, { artifactType: 'application/other' });
  o.fallbackIndex = hash((await signed.referrersFromFallback(simg.manifest.desc)).bytes ?? Buffer.alloc(0));

  // chunked upload
  const chunked = client.repository(host, 'app/chunked');
  const big = blob(bytesOf('big', 300 * 1024 + 17));
  requests.length = 0;
  await chunked.push(big.desc, Readable.from([big.bytes.subarray(0, 1000), big.bytes.subarray(1000, 200_000), big.bytes.subarray(200_000)]), { chunked: true });
  o.chunkRequests = requests.map((l) => /^(PATCH|PUT) .* (\d{3})\b/.exec(l)).filter((m) => m !== null).map((m) => `${m[1]} ${m[2]}`);
  o.chunked = hash(await readAll(await chunked.fetch(big.desc), 1 << 20));

  // a digest that lies
  const bad = client.repository(host, 'app/bad');
  const real = blob(bytesOf('real', 4096));
  const lie: Descriptor = { ...real.desc, digest: digestOf(bytesOf('lie', 4096)) };
  o.lies = [
    await codeOf(bad.push(lie, Readable.from([real.bytes]))),
    await codeOf(bad.push(lie, real.bytes)),
    await codeOf(bad.push(lie, Readable.from([real.bytes]), { chunked: true })),
    await bad.exists(lie),
  ];

  // mount
  const src = client.repository(host, 'app/mount-src');
  const dst = client.repository(host, 'app/mount-dst');
  const mb = blob(bytesOf('mount', 1500));
  await src.push(mb.desc, mb.bytes);
  o.mount = [await dst.exists(mb.desc), await dst.mount(mb.desc, 'app/mount-src'), await dst.exists(mb.desc), await dst.mount(blob(bytesOf('nomount', 10)).desc, 'app/mount-src')];

  // tags and catalog
  const tagsRepo = client.repository(host, 'app/tags');
  const timg = makeImage('tags', [10]);
  await pushImage(tagsRepo, timg, 'a');
  await tagsRepo.tag(timg.manifest.desc, timg.manifest.bytes, 'b');
  await tagsRepo.tag(timg.manifest.desc, timg.manifest.bytes, 'c');
  const tags: string[] = [];
  for await (const t of tagsRepo.tags()) tags.push(t);
  o.tags = tags.sort();
  const repos: string[] = [];
  for await (const r of client.catalog(host, { n: 1 })) repos.push(r);
  o.catalog = repos.sort();

  // delete
  const del = client.repository(host, 'app/delete');
  const delimg = makeImage('delete', [10]);
  await pushImage(del, delimg);
  await del.deleteManifest(delimg.manifest.desc.digest);
  o.deleted = [
    await codeOf(del.fetchManifest(delimg.manifest.desc.digest)),
    await codeOf(del.fetchManifest('no-such-tag')),
    await codeOf(del.resolve('no-such-tag')),
  ];
  return o;
}

async function runAgainst(kind: 'distribution' | 'serve-on' | 'serve-off'): Promise<Observations> {
  const requests: string[] = [];
  const reg =
    kind === 'distribution'
      ? await startDistribution()
      : await (async () => {
          const s = await startTestServer({ referrersApi: kind === 'serve-on' });
          return { host: s.host, stop: () => s.dispose() };
        })();
  const client = new RegistryClient({ plainHttp: [reg.host], credentials: noCredentials, chunkSize: 64 * 1024, side: 'destination', log: (l) => requests.push(l) });
  try {
    return await scenario(client, reg.host, requests);
  } finally {
    await client.close();
    await reg.stop();
  }
}

describe('registry client against Distribution and airlock serve', () => {
  const results = new Map<string, Observations>();
  beforeAll(async () => {
    const kinds = ['distribution', 'serve-on', 'serve-off'] as const;
    const runs = await Promise.all(kinds.map((k) => runAgainst(k)));
    kinds.forEach((k, i) => results.set(k, runs[i]!));
  }, 120_000);
  afterAll(() => results.clear());

  it('sees on Distribution what its own suite expects', () => {
    const d = results.get('distribution')!;
    expect(d.byTag).toMatchObject({ desc: { mediaType: MediaType.OciManifest } });
    expect(d.referrers).toMatchObject({ subjectAccepted: false, beforeFallback: [], api: 'no' });
    expect((d.afterFallback as Descriptor[]).length).toBe(1);
    expect(d.lies).toEqual(['DIGEST_MISMATCH', 'DIGEST_MISMATCH', 'DIGEST_MISMATCH', false]);
    expect(d.mount).toEqual([false, true, true, false]);
    expect(d.tags).toEqual(['a', 'b', 'c']);
    // resolve is a HEAD: no body, so no registry error code in the message
    expect(d.deleted).toEqual(['NOT_FOUND MANIFEST_UNKNOWN', 'NOT_FOUND MANIFEST_UNKNOWN', 'NOT_FOUND']);
    expect(d.chunkRequests).toEqual(['PATCH 202', 'PATCH 202', 'PATCH 202', 'PATCH 202', 'PATCH 202', 'PUT 201']);
  });

  describe('when serve has no referrers API', () => {
    it('gives exactly the results Distribution gives', () => {
      expect(results.get('serve-off')).toEqual(results.get('distribution'));
    });
  });

  describe('when serve has the referrers API', () => {
    it('gives the same results, except that the subject is accepted and listed by the API', () => {
      const d = results.get('distribution')!;
      const on = results.get('serve-on')!;
      const { referrers: dr, ...dRest } = d;
      const { referrers: onr, ...onRest } = on;
      expect(onRest).toEqual(dRest);
      expect(dr).toMatchObject({ subjectAccepted: false, api: 'no' });
      expect(onr).toEqual({ subjectAccepted: true, beforeFallback: d.afterFallback, api: 'yes' });
    });
  });
});
