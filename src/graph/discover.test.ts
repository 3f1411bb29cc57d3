import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../content/memory.js';
import { encodeJson, type Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { cosignTag, fallbackTag, referrersIndex } from '../oci/referrers.js';
import { Reference } from '../oci/reference.js';
import { discover, type DiscoverySource, type TypeSelector } from './discover.js';

const NONE: TypeSelector = { matches: () => false, none: true };
const ALL: TypeSelector = { matches: () => true };
const only = (t: string): TypeSelector => ({ matches: (x) => x === t });

async function image(store: MemoryStore, seed: string, platform?: { os: string; architecture: string }): Promise<Descriptor> {
  const config = await store.add(MediaType.OciConfig, encodeJson({ seed, architecture: platform?.architecture ?? 'amd64', os: 'linux' }));
  const layer = await store.add(MediaType.OciLayer, Buffer.from(`layer ${seed}`));
  const d = await store.add(MediaType.OciManifest, encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }));
  return platform ? { ...d, platform } : d;
}

async function artifact(store: MemoryStore, subject: Descriptor, artifactType: string, body: string, annotations?: Record<string, string>): Promise<Descriptor> {
  const empty = await store.add(MediaType.OciEmpty, Buffer.from('{}'));
  const layer = await store.add(artifactType, Buffer.from(body));
  const m = { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType, config: empty, layers: [layer], subject, ...(annotations ? { annotations } : {}) };
  return store.add(MediaType.OciManifest, encodeJson(m));
}

async function cosignSig(store: MemoryStore, subject: Descriptor, extra = ''): Promise<Descriptor> {
  const cfg = await store.add(MediaType.OciConfig, encodeJson({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const payload = await store.add(MediaType.CosignSimpleSigning, encodeJson({ critical: { image: { 'docker-manifest-digest': subject.digest } }, extra }), {
    annotations: { 'dev.cosignproject.cosign/signature': 'c2ln' },
  });
  const d = await store.add(MediaType.OciManifest, encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: cfg, layers: [payload] }));
  await store.tag(d, store.bytes(d.digest)!, cosignTag(subject.digest, 'sig'));
  return d;
}

/** A source over a memory store with the referrers API switched on or off (then the fallback tag is used). */
function source(store: MemoryStore, api: boolean): DiscoverySource {
  return {
    fetchManifest: (r) => store.fetchManifest(r),
    referrersFromApi: async (s) => (api ? store.referrers(s) : undefined),
    referrersFromFallback: async (s) => {
      try {
        const { bytes } = await store.fetchManifest(fallbackTag(s.digest));
        return { list: JSON.parse(bytes.toString()).manifests as Descriptor[] };
      } catch {
        return { list: [] };
      }
    },
  };
}

async function writeFallbackIndexes(store: MemoryStore, subjects: Descriptor[]): Promise<void> {
  for (const s of subjects) {
    const list = await store.referrers(s);
    if (list.length === 0) continue;
    const d = await store.add(MediaType.OciIndex, encodeJson(referrersIndex(list)));
    await store.tag(d, store.bytes(d.digest)!, fallbackTag(s.digest));
  }
}

async function scenario() {
  const store = new MemoryStore();
  const amd = await image(store, 'amd', { os: 'linux', architecture: 'amd64' });
  const arm = await image(store, 'arm', { os: 'linux', architecture: 'arm64' });
  const index = await store.add(MediaType.OciIndex, encodeJson({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [amd, arm] }));
  await store.tag(index, store.bytes(index.digest)!, 'v1');
  const sigIndex = await cosignSig(store, index);
  const sigAmd = await cosignSig(store, amd);
  const bundle = await artifact(store, index, MediaType.SigstoreBundle03, '{"bundle":1}', {
    'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1',
  });
  const spdx = await artifact(store, index, MediaType.Spdx, '{"spdx":1}');
  const cdx = await artifact(store, index, MediaType.CycloneDx, '{"cdx":1}');
  const sbomSig = await artifact(store, spdx, MediaType.SigstoreBundle03, '{"bundle":2}', {
    'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1',
  });
  await writeFallbackIndexes(store, [index, amd, arm, spdx, cdx]);
  return { store, index, amd, arm, sigIndex, sigAmd, bundle, spdx, cdx, sbomSig };
}

const ref = Reference.parse('registry.example/app:v1');

describe('discover', () => {
  for (const api of [true, false]) {
    describe(`when the referrers API is ${api ? 'on' : 'off (fallback tag)'}`, () => {
      it('packs signatures on the index and children by default, and no attachments', async () => {
        const s = await scenario();
        const g = await discover({ images: [{ ref }], open: () => source(s.store, api), signatures: true, attachments: NONE });
        expect(g.images[0]!.pinned.digest).toBe(s.index.digest);
        expect(g.images[0]!.platforms.map((p) => p.desc.digest).sort()).toEqual([s.amd.digest, s.arm.digest].sort());
        const edges = g.edges.map((e) => [e.subject, e.referrer.digest, e.kind, e.foundBy.join('+')]);
        expect(edges).toContainEqual([s.index.digest, s.sigIndex.digest, 'signature', 'cosign-tag']);
        expect(edges).toContainEqual([s.amd.digest, s.sigAmd.digest, 'signature', 'cosign-tag']);
        expect(edges).toContainEqual([s.index.digest, s.bundle.digest, 'signature', api ? 'referrers-api' : 'fallback-tag']);
        expect(g.edges.filter((e) => e.kind !== 'signature')).toEqual([]);
        expect(g.edges).toHaveLength(3);
        // every layer and config of both platforms is in the blob set
        expect(g.blobs.size).toBeGreaterThanOrEqual(4);
      });

      it('packs no signatures with signatures off', async () => {
        const s = await scenario();
        const g = await discover({ images: [{ ref }], open: () => source(s.store, api), signatures: false, attachments: NONE });
        expect(g.edges).toEqual([]);
      });

      it('selects attachments by type, and follows a referrer of a referrer', async () => {
        const s = await scenario();
        const g = await discover({ images: [{ ref }], open: () => source(s.store, api), signatures: true, attachments: only(MediaType.Spdx) });
        const ds = g.edges.map((e) => e.referrer.digest);
        expect(ds).toContain(s.spdx.digest);
        expect(ds).not.toContain(s.cdx.digest);
        expect(ds).toContain(s.sbomSig.digest);
        expect(g.edges.find((e) => e.referrer.digest === s.sbomSig.digest)!.subject).toBe(s.spdx.digest);
        expect(g.skippedReferrers.map((r) => r.digest)).toContain(s.cdx.digest);
      });

      it('takes all attachments with all', async () => {
        const s = await scenario();
        const g = await discover({ images: [{ ref }], open: () => source(s.store, api), signatures: true, attachments: ALL });
        expect(g.edges.map((e) => e.referrer.digest).sort()).toEqual(
          [s.sigIndex, s.sigAmd, s.bundle, s.spdx, s.cdx, s.sbomSig].map((d) => d.digest).sort(),
        );
      });
    });
  }

  describe('when a platform filter is given', () => {
    it('keeps the index and packs only the chosen child', async () => {
      const s = await scenario();
      const g = await discover({
        images: [{ ref, platforms: [{ os: 'linux', architecture: 'arm64' }] }],
        open: () => source(s.store, true),
        signatures: true,
        attachments: NONE,
      });
      expect(g.manifests.has(s.index.digest)).toBe(true);
      expect(g.manifests.has(s.arm.digest)).toBe(true);
      expect(g.manifests.has(s.amd.digest)).toBe(false);
      expect(g.images[0]!.skipped.map((x) => x.desc.digest)).toEqual([s.amd.digest]);
    });
  });

  describe('when cosign tags form a cycle', () => {
    it('ends, listing each edge once', async () => {
      const s = await scenario();
      // a hostile tag: the signature's own .sig tag points back at the index
      await s.store.tag(s.index, s.store.bytes(s.index.digest)!, cosignTag(s.sigIndex.digest, 'sig'));
      const g = await discover({ images: [{ ref }], open: () => source(s.store, true), signatures: true, attachments: ALL });
      const keys = g.edges.map((e) => `${e.subject}>${e.referrer.digest}`);
      expect(new Set(keys).size).toBe(keys.length);
      expect(keys).toContain(`${s.sigIndex.digest}>${s.index.digest}`);
    });
  });

  describe('when the source can list its tags', () => {
    it('asks for no cosign or fallback tag that the listing does not have', async () => {
      const s = await scenario();
      const asked: string[] = [];
      const src = source(s.store, false);
      const listing: DiscoverySource & { tags: () => AsyncIterable<string> } = {
        ...src,
        fetchManifest: (r) => {
          asked.push(r);
          return src.fetchManifest(r);
        },
        tags: () => s.store.tags(),
      };
      const g = await discover({ images: [{ ref }], open: () => listing, signatures: true, attachments: ALL });
      const tagLookups = asked.filter((r) => r.startsWith('sha256-'));
      const existing = new Set<string>();
      for await (const t of s.store.tags()) existing.add(t);
      expect(tagLookups.length).toBeGreaterThan(0);
      expect(tagLookups.every((t) => existing.has(t))).toBe(true);
      // and nothing is lost: the same edges as without a listing
      const plain = await discover({ images: [{ ref }], open: () => source(s.store, false), signatures: true, attachments: ALL });
      expect(g.edges.map((e) => e.referrer.digest)).toEqual(plain.edges.map((e) => e.referrer.digest));
    });
  });

  describe('when the registry fails', () => {
    it('fails naming the image and the mechanism', async () => {
      const s = await scenario();
      const src = source(s.store, true);
      const failing: DiscoverySource = {
        ...src,
        fetchManifest: async (r) => {
          if (r.endsWith('.sig')) {
            const { AirlockError } = await import('../errors.js');
            throw new AirlockError('REGISTRY', `registry.example/app: GET manifest ${r}: 500 Internal Server Error`);
          }
          return src.fetchManifest(r);
        },
      };
      await expect(discover({ images: [{ ref }], open: () => failing, signatures: true, attachments: NONE })).rejects.toThrow(
        /registry\.example\/app:v1.*cosign tag sha256-[0-9a-f]{64}\.sig.*500/,
      );
    });
  });
});
