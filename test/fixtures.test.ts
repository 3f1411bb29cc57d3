import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { MemoryStore } from '../src/content/memory.js';
import { fetchBytes } from '../src/content/read.js';
import { staticCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';
import { isAirlockError } from '../src/errors.js';
import { digestHex, digestOf, type Digest } from '../src/oci/digest.js';
import { Annotation, isIndex, parseManifest, successors, type ImageIndex, type ImageManifest } from '../src/oci/manifest.js';
import { isManifestMediaType, MediaType } from '../src/oci/media-types.js';
import { cosignTag, fallbackTag } from '../src/oci/referrers.js';
import {
  buildFixtures,
  decryptCosignKey,
  dssePae,
  encryptCosignKey,
  fixtureKeys,
  makeFixtureKeys,
  pushStore,
  startRekorMock,
  tlogInstanceJson,
  verifyBlob,
  verifyCosignBundleSet,
  type CosignRekorBundle,
  type DsseEnvelope,
  type FixtureSet,
  type KeyKind,
  type RekorMock,
} from './support/fixtures/index.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';
import { startServer } from '../src/server/index.js';

const REGISTRY = 'quay.io';
const REPOSITORY = 'airlock-test/app';

function manifestOf(set: FixtureSet, digest: string): ImageManifest | ImageIndex {
  const bytes = set.store.bytes(digest);
  if (!bytes) throw new Error(`missing ${digest}`);
  return parseManifest(bytes);
}

function imageManifest(set: FixtureSet, digest: string): ImageManifest {
  const m = manifestOf(set, digest);
  if (isIndex(m)) throw new Error(`${digest} is an index`);
  return m;
}

function allDigests(set: FixtureSet): string[] {
  return set.store.descriptors().map((d) => d.digest).sort();
}

function tagsOf(store: MemoryStore): Record<string, string> {
  return Object.fromEntries([...store.tagMap()].map(([t, d]) => [t, d.digest]));
}

describe('test fixtures', () => {
  describe('buildFixtures', () => {
    describe('when built twice from the same seed', () => {
      it('produces byte-identical content, digests and tags (RSA and Ed25519 signatures included)', async () => {
        for (const signWith of ['rsa', 'ed25519'] as const) {
          const a = await buildFixtures({ seed: 'same', registry: REGISTRY, repository: REPOSITORY, signWith });
          const b = await buildFixtures({ seed: 'same', registry: REGISTRY, repository: REPOSITORY, signWith });
          expect(allDigests(a)).toEqual(allDigests(b));
          expect(tagsOf(a.store)).toEqual(tagsOf(b.store));
          expect(a.images).toEqual(b.images);
          for (const d of allDigests(a)) expect(a.store.bytes(d)!.equals(b.store.bytes(d)!)).toBe(true);
        }
      });

      it('keeps image digests stable with ECDSA, whose signatures differ run to run', async () => {
        const a = await buildFixtures({ seed: 'same', registry: REGISTRY, repository: REPOSITORY, signWith: 'ecdsa' });
        const b = await buildFixtures({ seed: 'same', registry: REGISTRY, repository: REPOSITORY, signWith: 'ecdsa' });
        expect(a.images.map((i) => i.digest)).toEqual(b.images.map((i) => i.digest));
        const rsa = await buildFixtures({ seed: 'same', registry: REGISTRY, repository: REPOSITORY, signWith: 'rsa' });
        expect(rsa.images.map((i) => i.digest)).toEqual(a.images.map((i) => i.digest));
      });
    });

    describe('when built from another seed', () => {
      it('produces different images', async () => {
        const a = await buildFixtures({ seed: 'one', registry: REGISTRY, repository: REPOSITORY });
        const b = await buildFixtures({ seed: 'two', registry: REGISTRY, repository: REPOSITORY });
        const da = a.images.map((i) => i.digest);
        for (const d of b.images.map((i) => i.digest)) expect(da).not.toContain(d);
      });
    });

    describe('the default set', () => {
      let set: FixtureSet;
      beforeAll(async () => {
        set = await buildFixtures({ seed: 'contents', registry: REGISTRY, repository: REPOSITORY });
      });

      it('has the images single, multi (two platforms) and unsigned under their tags', async () => {
        expect(set.images.map((i) => [i.tag, i.kind, i.ref])).toEqual([
          ['single', 'image', `${REPOSITORY}:single`],
          ['multi', 'index', `${REPOSITORY}:multi`],
          ['unsigned', 'image', `${REPOSITORY}:unsigned`],
        ]);
        for (const img of set.images) expect((await set.store.resolve(img.tag)).digest).toBe(img.digest);
        const multi = set.images.find((i) => i.tag === 'multi')!;
        const index = manifestOf(set, multi.digest) as ImageIndex;
        expect(index.mediaType).toBe(MediaType.OciIndex);
        expect(index.manifests.map((d) => `${d.platform?.os}/${d.platform?.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
        expect(index.manifests.map((d) => d.digest)).toEqual(multi.children);
        for (const child of index.manifests) {
          const m = imageManifest(set, child.digest);
          expect(m.layers).toHaveLength(2);
          const config = JSON.parse(set.store.bytes(m.config.digest)!.toString('utf8')) as {
            architecture: string;
            rootfs: { diff_ids: string[] };
          };
          expect(config.architecture).toBe(child.platform?.architecture);
          expect(config.rootfs.diff_ids).toEqual(m.layers.map((l) => digestOf(gunzipSync(set.store.bytes(l.digest)!))));
        }
      });

      it('makes layers real tar+gzip archives with fixed timestamps', async () => {
        const child = imageManifest(set, set.images[1]!.children[1]!);
        for (const layer of child.layers) {
          expect(layer.mediaType).toBe(MediaType.OciLayerGzip);
          const entries: { name: string; size: number; mtime: number }[] = [];
          const ex = extract();
          ex.on('entry', (h, stream, next) => {
            entries.push({ name: h.name, size: h.size ?? -1, mtime: h.mtime?.getTime() ?? -1 });
            stream.on('end', next);
            stream.resume();
          });
          const finished = new Promise<void>((resolve, reject) => {
            ex.on('finish', resolve);
            ex.on('error', reject);
          });
          ex.end(gunzipSync(set.store.bytes(layer.digest)!));
          await finished;
          expect(entries.map((e) => e.name)).toEqual([expect.stringMatching(/^airlock\/multi\/linux-arm64\/\d\.txt$/), expect.stringMatching(/\.bin$/)]);
          expect(entries[1]!.size).toBe(1536);
          for (const e of entries) expect(e.mtime).toBe(Date.parse('2024-01-01T00:00:00Z'));
        }
      });

      it('stores only manifests that parse, and everything they point to', () => {
        let manifests = 0;
        for (const desc of set.store.descriptors()) {
          if (!isManifestMediaType(desc.mediaType)) continue;
          manifests++;
          const m = parseManifest(set.store.bytes(desc.digest)!, { mediaType: desc.mediaType });
          expect(digestOf(set.store.bytes(desc.digest)!)).toBe(desc.digest);
          for (const s of successors(m)) {
            expect(set.store.bytes(s.digest), `${desc.digest} → ${s.digest}`).toBeDefined();
            expect(set.store.bytes(s.digest)!.byteLength).toBe(s.size);
          }
          if (m.subject) expect(set.store.bytes(m.subject.digest)).toBeDefined();
        }
        // 3 images + index + 2 children … at least the images, 6 cosign tags and 5 referrers
        expect(manifests).toBe(5 + 6 + 5);
      });

      it('has .sig on single, multi and each child, .att and .sbom on multi, nothing on unsigned', () => {
        const [single, multi, unsigned] = set.images;
        const tags = tagsOf(set.store);
        for (const d of [single!.digest, multi!.digest, ...multi!.children]) expect(tags[cosignTag(d, 'sig')]).toBeDefined();
        expect(tags[cosignTag(multi!.digest, 'att')]).toBeDefined();
        expect(tags[cosignTag(multi!.digest, 'sbom')]).toBeDefined();
        expect(Object.keys(tags).filter((t) => t.startsWith(`sha256-${digestHex(unsigned!.digest)}`))).toEqual([]);
        expect(set.cosignTags.map((t) => t.tag).sort()).toEqual(Object.keys(tags).filter((t) => t.startsWith('sha256-')).sort());
      });

      it('has the OCI 1.1 referrers on multi and a signature on its SPDX referrer', async () => {
        const multi = set.images[1]!;
        const refs = await set.store.referrers({ mediaType: MediaType.OciIndex, digest: multi.digest, size: multi.size });
        expect(refs.map((r) => r.artifactType)).toEqual([
          MediaType.SigstoreBundle03,
          MediaType.Spdx,
          MediaType.CycloneDx,
          MediaType.InToto,
        ]);
        const bundleRef = refs[0]!;
        expect(bundleRef.annotations?.[Annotation.BundlePredicateType]).toBe('https://sigstore.dev/cosign/sign/v1');
        expect(bundleRef.annotations?.[Annotation.BundleContent]).toBe('message-signature');
        for (const r of refs) {
          const m = imageManifest(set, r.digest);
          expect(m.config).toEqual({ mediaType: MediaType.OciEmpty, digest: digestOf(Buffer.from('{}')), size: 2 });
          expect(m.layers).toHaveLength(1);
          expect(m.subject?.digest).toBe(multi.digest);
        }
        const spdx = refs[1]!;
        const sbomSigs = await set.store.referrers(spdx);
        expect(sbomSigs.map((r) => r.artifactType)).toEqual([MediaType.SigstoreBundle03]);
        expect(set.referrers.filter((r) => r.via === 'referrers').map((r) => [r.kind, r.subject])).toEqual([
          ['signature', multi.digest],
          ['sbom', multi.digest],
          ['sbom', multi.digest],
          ['attestation', multi.digest],
          ['signature', spdx.digest],
        ]);
      });

      it('makes .att a DSSE envelope whose in-toto statement names the index and whose signature verifies', () => {
        const multi = set.images[1]!;
        const att = imageManifest(set, set.store.tagMap().get(cosignTag(multi.digest, 'att'))!.digest);
        const layer = att.layers[0]!;
        expect(layer.mediaType).toBe(MediaType.DsseEnvelope);
        expect(layer.annotations?.[Annotation.PredicateType]).toBe('https://slsa.dev/provenance/v1');
        const env = JSON.parse(set.store.bytes(layer.digest)!.toString('utf8')) as DsseEnvelope;
        expect(env.payloadType).toBe(MediaType.InToto);
        const payload = Buffer.from(env.payload, 'base64');
        const statement = JSON.parse(payload.toString('utf8')) as {
          _type: string;
          predicateType: string;
          subject: { name: string; digest: { sha256: string } }[];
        };
        expect(statement._type).toBe('https://in-toto.io/Statement/v1');
        expect(statement.subject).toEqual([{ name: `${REGISTRY}/${REPOSITORY}`, digest: { sha256: digestHex(multi.digest) } }]);
        const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
        expect(verifyBlob(set.signingKey.publicKeyPem, dssePae(env.payloadType, payload), sig)).toBe(true);
        expect(verifyBlob(set.signingKey.publicKeyPem, payload, sig)).toBe(false);
      });

      it('makes .sbom carry an SPDX 2.3 JSON document', () => {
        const multi = set.images[1]!;
        const sbom = imageManifest(set, set.store.tagMap().get(cosignTag(multi.digest, 'sbom'))!.digest);
        expect(sbom.layers[0]!.mediaType).toBe('text/spdx+json');
        const doc = JSON.parse(set.store.bytes(sbom.layers[0]!.digest)!.toString('utf8')) as { spdxVersion: string };
        expect(doc.spdxVersion).toBe('SPDX-2.3');
      });
    });
  });

  describe('cosign .sig signatures', () => {
    for (const kind of ['ecdsa', 'rsa', 'ed25519'] as const satisfies readonly KeyKind[]) {
      describe(`when signed with ${kind}`, () => {
        it('verifies each signature with node:crypto against the public key, and the payload names the right digest', async () => {
          const set = await buildFixtures({ seed: `sig-${kind}`, registry: REGISTRY, repository: REPOSITORY, signWith: kind });
          const sigs = set.cosignTags.filter((t) => t.suffix === 'sig');
          expect(sigs).toHaveLength(4);
          const other = (await fixtureKeys())[kind === 'rsa' ? 'ecdsa' : 'rsa'];
          for (const { tag, digest, subject } of sigs) {
            expect(tag).toBe(cosignTag(subject, 'sig'));
            const m = imageManifest(set, digest);
            expect(m.mediaType).toBe(MediaType.OciManifest);
            expect(m.config.mediaType).toBe(MediaType.OciConfig);
            const layer = m.layers[0]!;
            expect(layer.mediaType).toBe(MediaType.CosignSimpleSigning);
            const payload = set.store.bytes(layer.digest)!;
            expect(JSON.parse(payload.toString('utf8'))).toEqual({
              critical: {
                identity: { 'docker-reference': `${REGISTRY}/${REPOSITORY}` },
                image: { 'docker-manifest-digest': subject },
                type: 'cosign container image signature',
              },
              optional: null,
            });
            const sig = Buffer.from(layer.annotations![Annotation.CosignSignature]!, 'base64');
            expect(verifyBlob(set.keys[kind].publicKeyPem, payload, sig)).toBe(true);
            expect(verifyBlob(other.publicKeyPem, payload, sig)).toBe(false);
            const tampered = Buffer.from(payload.toString('utf8').replace(subject, `sha256:${'0'.repeat(64)}`));
            expect(verifyBlob(set.keys[kind].publicKeyPem, tampered, sig)).toBe(false);
          }
        });
      });
    }
  });

  describe('Sigstore bundle v0.3 referrers', () => {
    for (const kind of ['ecdsa', 'rsa'] as const) {
      it(`verifies with @sigstore/verify and a key finder (${kind})`, async () => {
        const set = await buildFixtures({ seed: `bundle-${kind}`, registry: REGISTRY, repository: REPOSITORY, signWith: kind });
        const sigs = set.referrers.filter((r) => r.via === 'referrers' && r.kind === 'signature');
        expect(sigs).toHaveLength(2);
        const root = TrustedRoot.fromJSON({
          mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
          tlogs: [],
          certificateAuthorities: [],
          ctlogs: [],
          timestampAuthorities: [],
        });
        const trust = toTrustMaterial(root, () => ({ publicKey: set.signingKey.publicKey, validFor: () => true }));
        const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
        for (const r of sigs) {
          const layer = imageManifest(set, r.digest).layers[0]!;
          expect(layer.mediaType).toBe(MediaType.SigstoreBundle03);
          const json = JSON.parse(set.store.bytes(layer.digest)!.toString('utf8')) as { mediaType: string };
          expect(json.mediaType).toBe(MediaType.SigstoreBundle03);
          const bundle = bundleFromJSON(json);
          // the signed payload is the subject's simple-signing payload
          expect(JSON.parse(r.signedPayload!.toString('utf8')).critical.image['docker-manifest-digest']).toBe(r.subject);
          expect(() => verifier.verify(toSignedEntity(bundle, r.signedPayload))).not.toThrow();
          expect(() => verifier.verify(toSignedEntity(bundle, Buffer.from('something else')))).toThrow();
        }
      });
    }
  });

  describe('cosign encrypted private keys', () => {
    it('round-trips every fixture key through the cosign PEM with its password', async () => {
      const keys = await fixtureKeys();
      for (const k of [keys.ecdsa, keys.rsa, keys.ed25519]) {
        expect(k.cosignEncryptedPem).toMatch(/^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
        const body = JSON.parse(
          Buffer.from(k.cosignEncryptedPem.split('\n').slice(1, -2).join(''), 'base64').toString('utf8'),
        ) as { kdf: { name: string; params: unknown }; cipher: { name: string } };
        expect(body.kdf.name).toBe('scrypt');
        expect(body.kdf.params).toEqual({ N: 32768, r: 8, p: 1 });
        expect(body.cipher.name).toBe('nacl/secretbox');
        const back = await decryptCosignKey(k.cosignEncryptedPem, k.password);
        expect(back.export({ type: 'pkcs8', format: 'der' }).equals(k.privateKey.export({ type: 'pkcs8', format: 'der' }))).toBe(true);
        expect(createPublicKey(back).export({ type: 'spki', format: 'pem' })).toBe(k.publicKeyPem);
      }
    });

    it('refuses a wrong password with a VERIFY error', async () => {
      const keys = await fixtureKeys();
      const err = await decryptCosignKey(keys.ed25519.cosignEncryptedPem, 'wrong').catch((e: unknown) => e);
      expect(isAirlockError(err, 'VERIFY')).toBe(true);
    });

    it('reads the older ENCRYPTED COSIGN PRIVATE KEY label and random salts', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const pem = (await encryptCosignKey(privateKey, '')).replaceAll('SIGSTORE', 'COSIGN');
      const back = await decryptCosignKey(pem, '');
      expect(back.export({ format: 'jwk' })).toEqual(privateKey.export({ format: 'jwk' }));
    });

    it('derives the same keys and encrypted PEMs for the same seed', async () => {
      const again = await makeFixtureKeys();
      const cached = await fixtureKeys();
      expect(again).not.toBe(cached);
      for (const kind of ['ecdsa', 'rsa', 'ed25519'] as const) {
        expect(again[kind].publicKeyPem).toBe(cached[kind].publicKeyPem);
        expect(again[kind].cosignEncryptedPem).toBe(cached[kind].cosignEncryptedPem);
      }
    });

    it('derives different ECDSA and Ed25519 keys for other seeds', async () => {
      const a = await fixtureKeys('seed-x');
      const b = await fixtureKeys('seed-y');
      expect(a.ed25519.publicKeyPem).not.toBe(b.ed25519.publicKeyPem);
      expect(a.ecdsa.publicKeyPem).not.toBe(b.ecdsa.publicKeyPem);
      expect(a.rsa.publicKeyPem).toBe(b.rsa.publicKeyPem); // the checked-in test key
      expect(a.rsa.publicKey.asymmetricKeyDetails?.modulusLength).toBe(4096);
      expect(a.ecdsa.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    });
  });

  describe('with the Rekor mock', () => {
    let rekor: RekorMock;
    let set: FixtureSet;
    beforeAll(async () => {
      rekor = await startRekorMock();
      set = await buildFixtures({ seed: 'rekor', registry: REGISTRY, repository: REPOSITORY, rekorUrl: rekor.url, signWith: 'ecdsa' });
    });
    afterAll(async () => {
      await rekor.stop();
    });

    it('logs every signature and the bundle annotation SET verifies against the mock key', () => {
      // 4 .sig entries + 1 .att entry + 2 bundle signatures
      expect(rekor.entries).toBe(7);
      const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
      for (const { digest } of set.cosignTags.filter((t) => t.suffix === 'sig')) {
        const layer = imageManifest(set, digest).layers[0]!;
        const bundle = JSON.parse(layer.annotations![Annotation.CosignBundle]!) as CosignRekorBundle;
        expect(verifyCosignBundleSet(bundle, rekor.publicKeyPem)).toBe(true);
        expect(verifyCosignBundleSet(bundle, otherKey)).toBe(false);
        expect(verifyCosignBundleSet({ ...bundle, Payload: { ...bundle.Payload, logIndex: bundle.Payload.logIndex + 1 } }, rekor.publicKey)).toBe(
          false,
        );
        const body = JSON.parse(Buffer.from(bundle.Payload.body, 'base64').toString('utf8')) as {
          kind: string;
          spec: { data: { hash: { value: string } }; signature: { content: string; publicKey: { content: string } } };
        };
        expect(body.kind).toBe('hashedrekord');
        const payload = set.store.bytes(layer.digest)!;
        expect(body.spec.data.hash.value).toBe(createHash('sha256').update(payload).digest('hex'));
        expect(body.spec.signature.content).toBe(layer.annotations![Annotation.CosignSignature]);
        expect(Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8')).toBe(set.signingKey.publicKeyPem);
        expect(bundle.Payload.logID).toBe(createHash('sha256').update(rekor.publicKey.export({ type: 'spki', format: 'der' })).digest('hex'));
      }
    });

    it('makes v0.3 bundles whose tlog entry @sigstore/verify accepts with the mock log as trust root', () => {
      const root = TrustedRoot.fromJSON({
        mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
        tlogs: [tlogInstanceJson(rekor)],
        certificateAuthorities: [],
        ctlogs: [],
        timestampAuthorities: [],
      });
      const trust = toTrustMaterial(root, () => ({ publicKey: set.signingKey.publicKey, validFor: () => true }));
      const verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 0 });
      const strangerRoot = TrustedRoot.fromJSON({ ...TrustedRoot.toJSON(root) as object, tlogs: [] });
      const stranger = new Verifier(toTrustMaterial(strangerRoot, () => ({ publicKey: set.signingKey.publicKey, validFor: () => true })), {
        tlogThreshold: 1,
        ctlogThreshold: 0,
        timestampThreshold: 0,
      });
      for (const r of set.referrers.filter((x) => x.via === 'referrers' && x.kind === 'signature')) {
        const layer = imageManifest(set, r.digest).layers[0]!;
        const bundle = bundleFromJSON(JSON.parse(set.store.bytes(layer.digest)!.toString('utf8')));
        expect(() => verifier.verify(toSignedEntity(bundle, r.signedPayload))).not.toThrow();
        expect(() => stranger.verify(toSignedEntity(bundle, r.signedPayload))).toThrow();
      }
    });

    it('logs the .att envelope as an intoto entry whose SET verifies and whose hashes match the layer', () => {
      const multi = set.images[1]!;
      const layer = imageManifest(set, set.store.tagMap().get(cosignTag(multi.digest, 'att'))!.digest).layers[0]!;
      const bundle = JSON.parse(layer.annotations![Annotation.CosignBundle]!) as CosignRekorBundle;
      expect(verifyCosignBundleSet(bundle, rekor.publicKey)).toBe(true);
      const body = JSON.parse(Buffer.from(bundle.Payload.body, 'base64').toString('utf8')) as {
        kind: string;
        apiVersion: string;
        spec: { content: { hash: { value: string }; payloadHash: { value: string } } };
      };
      expect([body.kind, body.apiVersion]).toEqual(['intoto', '0.0.2']);
      const envelope = set.store.bytes(layer.digest)!;
      expect(body.spec.content.hash.value).toBe(digestHex(digestOf(envelope)));
      const payload = Buffer.from((JSON.parse(envelope.toString('utf8')) as DsseEnvelope).payload, 'base64');
      expect(body.spec.content.payloadHash.value).toBe(digestHex(digestOf(payload)));
    });

    it('puts a tlog entry in each v0.3 bundle', () => {
      for (const r of set.referrers.filter((x) => x.via === 'referrers' && x.kind === 'signature')) {
        const layer = imageManifest(set, r.digest).layers[0]!;
        const json = JSON.parse(set.store.bytes(layer.digest)!.toString('utf8')) as {
          verificationMaterial: { tlogEntries: { kindVersion: { kind: string } }[] };
        };
        expect(json.verificationMaterial.tlogEntries.map((e) => e.kindVersion.kind)).toEqual(['hashedrekord']);
      }
    });
  });

  describe('pushStore', () => {
    let set: FixtureSet;
    beforeAll(async () => {
      set = await buildFixtures({ seed: 'push', registry: REGISTRY, repository: REPOSITORY });
    });

    describe('when the target has the referrers API (no fallback indexes)', () => {
      it('reproduces every digest, tag and referrer', async () => {
        const target = new MemoryStore();
        await pushStore(set.store, target);
        expect(target.descriptors().map((d) => d.digest).sort()).toEqual(allDigests(set));
        expect(tagsOf(target)).toEqual(tagsOf(set.store));
        for (const d of allDigests(set)) expect(target.bytes(d)!.equals(set.store.bytes(d)!)).toBe(true);
        const multi = set.images[1]!;
        const subject = { mediaType: multi.mediaType, digest: multi.digest, size: multi.size };
        expect(await target.referrers(subject)).toEqual(await set.store.referrers(subject));
      });
    });

    describe('when the target needs fallback indexes', () => {
      it('tags a sha256-<hex> index per subject listing each referrer once, also after a second push', async () => {
        const target = new MemoryStore();
        await pushStore(set.store, target, { fallbackIndexes: true });
        await pushStore(set.store, target, { fallbackIndexes: true });
        const bySubject = new Map<Digest, typeof set.referrers>();
        for (const r of set.referrers.filter((x) => x.via === 'referrers')) {
          bySubject.set(r.subject, [...(bySubject.get(r.subject) ?? []), r]);
        }
        expect(bySubject.size).toBe(2);
        for (const [subject, refs] of bySubject) {
          const desc = await target.resolve(fallbackTag(subject));
          expect(desc.mediaType).toBe(MediaType.OciIndex);
          const index = parseManifest(target.bytes(desc.digest)!) as ImageIndex;
          expect(index.manifests.map((d) => d.digest)).toEqual(refs.map((r) => r.digest));
          expect(index.manifests.map((d) => d.artifactType)).toEqual(refs.map((r) => r.artifactType));
          for (const d of index.manifests) {
            expect(d.mediaType).toBe(MediaType.OciManifest);
            expect(d.size).toBe(target.bytes(d.digest)!.byteLength);
            expect(d.annotations?.[Annotation.Created]).toBe('2024-01-01T00:00:00Z');
          }
        }
        // every original tag is there too
        for (const [t, d] of set.store.tagMap()) expect((await target.resolve(t)).digest).toBe(d.digest);
      });

      it('merges into a fallback index the target already has', async () => {
        const target = new MemoryStore();
        const multi = set.images[1]!;
        // a first writer pushed only the base images and one referrer
        const partial = await buildFixtures({ seed: 'push', registry: REGISTRY, repository: REPOSITORY, include: { referrers: false } });
        await pushStore(partial.store, target, { fallbackIndexes: true });
        await expect(target.resolve(fallbackTag(multi.digest))).rejects.toSatisfy((e: unknown) => isAirlockError(e, 'NOT_FOUND'));
        await pushStore(set.store, target, { fallbackIndexes: true });
        const index = parseManifest(target.bytes((await target.resolve(fallbackTag(multi.digest))).digest)!) as ImageIndex;
        expect(index.manifests).toHaveLength(4);
        expect(new Set(index.manifests.map((d) => d.digest)).size).toBe(4);
      });
    });
  });

  describe('pushStore into Distribution 2.8 (no referrers API)', () => {
    let registry: StartedRegistry;
    let set: FixtureSet;
    let tmp: string;
    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'airlock-fixtures-'));
      registry = await startDistribution();
      set = await buildFixtures({ seed: 'distribution', registry: REGISTRY, repository: REPOSITORY });
    });
    afterAll(async () => {
      await registry?.stop();
      await rm(tmp, { recursive: true, force: true });
    });

    it('pushes images skopeo copies and checks (an independent reader of the same registry)', async () => {
      const client = new RegistryClient({ plainHttp: [registry.host], credentials: staticCredentials({}), retries: 0 });
      await pushStore(set.store, client.repository(registry.host, REPOSITORY));
      const multi = set.images[1]!;
      const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/${multi.ref}`]);
      expect(digestOf(raw)).toBe(multi.digest);
      const out = join(tmp, 'layout');
      execFileSync('skopeo', [
        'copy', '--all', '--quiet', '--src-tls-verify=false', '--tmpdir', tmp,
        `docker://${registry.host}/${multi.ref}`, `oci:${out}:multi`,
      ]);
      const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      expect(index.manifests.map((d) => d.digest)).toEqual([multi.digest]);
      for (const child of multi.children) {
        const m = imageManifest(set, child);
        for (const d of [child, m.config.digest, ...m.layers.map((l) => l.digest)]) {
          expect(digestOf(await readFile(join(out, 'blobs', 'sha256', digestHex(d as Digest))))).toBe(d);
        }
      }
    });

    it('stores every manifest byte-identical under its digest and tag, and referrers are found via the fallback tag', async () => {
      const client = new RegistryClient({ plainHttp: [registry.host], credentials: staticCredentials({}), retries: 0 });
      const repo = client.repository(registry.host, REPOSITORY);
      await pushStore(set.store, repo, { fallbackIndexes: true });
      for (const [tag, desc] of set.store.tagMap()) {
        const got = await repo.resolve(tag);
        expect(got.digest, tag).toBe(desc.digest);
        expect((await fetchBytes(repo, got)).equals(set.store.bytes(desc.digest)!)).toBe(true);
      }
      for (const desc of set.store.descriptors()) expect(await repo.exists(desc), desc.digest).toBe(true);
      const multi = set.images[1]!;
      const subject = { mediaType: multi.mediaType, digest: multi.digest, size: multi.size };
      const listed = await repo.referrers(subject);
      expect(repo.referrersApi()).toBe('no');
      expect(listed.map((d) => [d.digest, d.artifactType])).toEqual(
        set.referrers.filter((r) => r.via === 'referrers' && r.subject === multi.digest).map((r) => [r.digest, r.artifactType]),
      );
      const spdx = listed.find((d) => d.artifactType === MediaType.Spdx)!;
      expect((await repo.referrers(spdx)).map((d) => d.artifactType)).toEqual([MediaType.SigstoreBundle03]);
      // a second push changes nothing: the fallback index still lists each referrer once
      await pushStore(set.store, repo, { fallbackIndexes: true });
      expect((await repo.referrers(subject)).map((d) => d.digest)).toEqual(listed.map((d) => d.digest));
    });
  });

  describe('pushStore into airlock serve', () => {
    for (const referrersApi of [true, false]) {
      describe(`when the referrers API is ${referrersApi ? 'on' : 'off'}`, () => {
        it('reproduces every tag and lists the same referrers as the fixture store', async () => {
          const root = await mkdtemp(join(tmpdir(), 'airlock-fixtures-serve-'));
          const server = await startServer({ root, listen: '127.0.0.1:0', referrersApi });
          try {
            const set = await buildFixtures({ seed: 'serve', registry: REGISTRY, repository: REPOSITORY });
            const client = new RegistryClient({ plainHttp: [server.host], credentials: staticCredentials({}), retries: 0 });
            const repo = client.repository(server.host, REPOSITORY);
            await pushStore(set.store, repo, { fallbackIndexes: !referrersApi });
            for (const [tag, desc] of set.store.tagMap()) expect((await repo.resolve(tag)).digest, tag).toBe(desc.digest);
            const multi = set.images[1]!;
            const subject = { mediaType: multi.mediaType, digest: multi.digest, size: multi.size };
            const listed = await repo.referrers(subject);
            expect(repo.referrersApi()).toBe(referrersApi ? 'yes' : 'no');
            const expected = await set.store.referrers(subject);
            // distribution-spec leaves the order of a referrers listing to the registry
            const key = (d: { digest: string; artifactType?: string; size: number }): string => `${d.digest} ${d.artifactType} ${d.size}`;
            expect(listed.map(key).sort()).toEqual(expected.map(key).sort());
            const spdx = listed.find((d) => d.artifactType === MediaType.Spdx)!;
            expect((await repo.referrers(spdx)).map((d) => d.artifactType)).toEqual([MediaType.SigstoreBundle03]);
            // with the API, no fallback tag is made
            const fallback = await repo.resolve(fallbackTag(multi.digest)).then(
              () => true,
              (e: unknown) => (isAirlockError(e, 'NOT_FOUND') ? false : Promise.reject(e)),
            );
            expect(fallback).toBe(!referrersApi);
          } finally {
            await server.close();
            await rm(root, { recursive: true, force: true });
          }
        });
      });
    }
  });
});
