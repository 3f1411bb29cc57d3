import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InventoryImage, InventoryReferrer } from '../src/archive/inventory.js';
import { sha256, type Digest } from '../src/oci/digest.js';
import { Annotation, encodeJson, isIndex, parseManifest, type Manifest } from '../src/oci/manifest.js';
import { isManifestMediaType, MediaType } from '../src/oci/media-types.js';
import { effectivePolicies, loadTrust, policyFor, verifyImages, type Policy, type TrustRootData, type VerifyInput } from '../src/verify/index.js';
import {
  buildFixtures,
  fixtureKeys,
  logHashedRekord,
  signBlob,
  simpleSigningPayload,
  startRekorMock,
  type FixtureSet,
  type KeyKind,
  type RekorMock,
} from './support/fixtures/index.js';

const REGISTRY = 'registry.example.com';
const REPO = 'team/app';

function root(name: string, kind: string, pem: string): TrustRootData {
  const bytes = Buffer.from(pem);
  return { name, kind, digest: sha256(bytes), bytes };
}

/** The verifier's input built straight from a fixture store, as load.ts builds it from an archive. */
function inputFrom(fx: FixtureSet, roots: TrustRootData[], policies: Policy[]): VerifyInput & { manifests: Map<string, { manifest: Manifest }>; blobs: Map<string, Uint8Array>; referrers: InventoryReferrer[] } {
  const manifests = new Map<string, { manifest: Manifest }>();
  const blobs = new Map<string, Uint8Array>();
  for (const d of fx.store.descriptors()) {
    const bytes = fx.store.bytes(d.digest)!;
    blobs.set(d.digest, bytes);
    if (isManifestMediaType(d.mediaType)) {
      try {
        manifests.set(d.digest, { manifest: parseManifest(bytes, { mediaType: d.mediaType }) });
      } catch {
        /* a layer that happens to claim a manifest type: not ours */
      }
    }
  }
  const tops = fx.images.filter((im) => ['single', 'multi', 'unsigned'].includes(im.tag));
  const images: InventoryImage[] = tops.map((im) => {
    const m = manifests.get(im.digest)!.manifest;
    return {
      source: `${fx.dockerReference}:${im.tag}`,
      repository: fx.dockerReference,
      tag: im.tag,
      digest: im.digest,
      mediaType: im.mediaType,
      size: im.size,
      platforms: isIndex(m) ? m.manifests.map((c) => ({ digest: c.digest, ...(c.platform ? { platform: c.platform } : {}) })) : [],
      skippedPlatforms: [],
    };
  });
  const referrers: InventoryReferrer[] = fx.referrers.map((r) => ({
    subject: r.subject,
    digest: r.digest,
    mediaType: r.mediaType,
    size: r.size,
    kind: r.kind,
    types: [],
    foundBy: [],
    repository: fx.dockerReference,
  }));
  return { images, referrers, manifests, blobs, trust: loadTrust(roots), policies };
}

/** Add a cosign `.sig`-style signature manifest for `subject` to an input. */
function addSignature(input: ReturnType<typeof inputFrom>, subject: Digest, payload: Buffer, signature: Buffer, bundle?: unknown): void {
  const annotations: Record<string, string> = { [Annotation.CosignSignature]: signature.toString('base64') };
  if (bundle) annotations[Annotation.CosignBundle] = JSON.stringify(bundle);
  const layerDigest = sha256(payload);
  input.blobs.set(layerDigest, payload);
  const manifest = {
    schemaVersion: 2 as const,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256('{}'), size: 2 },
    layers: [{ mediaType: MediaType.CosignSimpleSigning, digest: layerDigest, size: payload.length, annotations }],
  };
  const bytes = encodeJson(manifest);
  const digest = sha256(bytes);
  input.manifests.set(digest, { manifest });
  input.referrers.push({ subject, digest, mediaType: MediaType.OciManifest, size: bytes.length, kind: 'signature', types: [], foundBy: [], repository: REGISTRY });
}

/** Add an OCI 1.1 referrer whose one layer is a Sigstore bundle. */
function addBundle(input: ReturnType<typeof inputFrom>, subject: Digest, json: unknown, mediaType: string = MediaType.SigstoreBundle03): void {
  const bytes = encodeJson(json);
  const layerDigest = sha256(bytes);
  input.blobs.set(layerDigest, bytes);
  const manifest = {
    schemaVersion: 2 as const,
    mediaType: MediaType.OciManifest,
    artifactType: mediaType,
    config: { mediaType: MediaType.OciEmpty, digest: sha256('{}'), size: 2 },
    layers: [{ mediaType, digest: layerDigest, size: bytes.length }],
    subject: { mediaType: MediaType.OciManifest, digest: subject, size: 1 },
  };
  const m = encodeJson(manifest);
  const digest = sha256(m);
  input.manifests.set(digest, { manifest });
  input.referrers.push({ subject, digest, mediaType: MediaType.OciManifest, size: m.length, kind: 'signature', types: [], foundBy: [], repository: REGISTRY });
}

function teamPolicy(transparencyLog: boolean, roots = ['team']): Policy {
  return { name: 'team', scopes: [`${REGISTRY}/team`], roots, require: 'signature', transparencyLog, origin: 'file' };
}

describe('verifyImages', () => {
  let rekor: RekorMock;
  let otherRekor: RekorMock;
  beforeAll(async () => {
    [rekor, otherRekor] = await Promise.all([startRekorMock(), startRekorMock()]);
  });
  afterAll(async () => {
    await Promise.all([rekor?.stop(), otherRekor?.stop()]);
  });

  describe('when signatures are valid', () => {
    for (const kind of ['ecdsa', 'rsa', 'ed25519'] as KeyKind[]) {
      for (const withRekor of [false, true]) {
        it(`verifies ${kind} signatures ${withRekor ? 'with' : 'without'} a Rekor bundle: cosign legacy and Sigstore bundle, index and platform manifests`, async () => {
          const fx = await buildFixtures({
            seed: `verify-${kind}`,
            registry: REGISTRY,
            repository: REPO,
            signWith: kind,
            ...(withRekor ? { rekorUrl: rekor.url } : {}),
            include: { unsigned: false },
          });
          const roots = [root('team', 'public-key', fx.signingKey.publicKeyPem)];
          if (withRekor) roots.push(root('team-rekor', 'rekor-key', rekor.publicKeyPem));
          const report = verifyImages(inputFrom(fx, roots, [teamPolicy(withRekor)]));
          expect(report.failures).toEqual([]);
          expect(report.ok).toBe(true);
          // single + multi index + its two platform manifests
          expect(report.results).toHaveLength(4);
          for (const r of report.results) {
            expect(r.status).toBe('verified');
            expect(r.root).toBe('team');
            if (withRekor) expect(r.log).toBe('team-rekor');
          }
          expect(report.results.filter((r) => r.platform !== undefined).map((r) => r.platform).sort()).toEqual(['linux/amd64', 'linux/arm64']);
          const index = report.results.find((r) => r.digest === fx.images.find((i) => i.tag === 'multi')!.digest)!;
          const okFormats = index.signatures.filter((s) => s.ok && s.kind === 'signature').map((s) => s.format).sort();
          expect(okFormats).toEqual(['cosign simple-signing', 'sigstore bundle v0.3']);
          // the .att DSSE envelope and the in-toto referrer verify too
          expect(index.signatures.filter((s) => s.kind === 'attestation' && s.ok)).toHaveLength(2);
        });
      }
    }
  });

  describe('when a signature is bad', () => {
    let fx: FixtureSet;
    let single: Digest;
    beforeAll(async () => {
      fx = await buildFixtures({ seed: 'verify-reject', registry: REGISTRY, repository: REPO, signWith: 'rsa', rekorUrl: rekor.url, include: { multi: false, unsigned: false } });
      single = fx.images.find((i) => i.tag === 'single')!.digest;
    });
    const roots = () => [root('team', 'public-key', fx.signingKey.publicKeyPem), root('other', 'public-key', fx.keys.ecdsa.publicKeyPem), root('team-rekor', 'rekor-key', rekor.publicKeyPem)];
    const fresh = () => {
      const input = inputFrom(fx, roots(), [teamPolicy(true)]);
      // keep only our own signature manifests
      input.referrers.length = 0;
      return input;
    };
    const expectRejected = (input: VerifyInput, reason: RegExp) => {
      const report = verifyImages(input);
      expect(report.ok).toBe(false);
      const r = report.results.find((x) => x.digest === single)!;
      expect(r.status).toBe('invalid');
      expect(r.failed).toBe(true);
      expect(r.reasons.join('\n')).toMatch(reason);
      expect(report.failures).toHaveLength(1);
      expect(report.failures[0]).toMatch(reason);
    };
    const good = async (payload = simpleSigningPayload(`${REGISTRY}/${REPO}`, single), log = rekor) => {
      const signature = signBlob(fx.signingKey.privateKey, payload);
      const bundle = await logHashedRekord(log.url, { payload, signature, publicKeyPem: fx.signingKey.publicKeyPem });
      return { payload, signature, bundle };
    };

    it('accepts the untouched signature (control)', async () => {
      const input = fresh();
      const g = await good();
      addSignature(input, single, g.payload, g.signature, g.bundle);
      const report = verifyImages(input);
      expect(report.ok).toBe(true);
      expect(report.results.find((x) => x.digest === single)).toMatchObject({ status: 'verified', root: 'team', log: 'team-rekor' });
    });

    it('rejects a tampered payload', async () => {
      const input = fresh();
      const g = await good();
      const tampered = Buffer.from(g.payload.toString().replace('"optional":null', '"optional":{"x":"y"}'));
      addSignature(input, single, tampered, g.signature, g.bundle);
      expectRejected(input, /does not verify with any carried key/);
    });

    it('rejects a payload naming another digest', async () => {
      const input = fresh();
      const other = sha256('another manifest');
      const g = await good(simpleSigningPayload(`${REGISTRY}/${REPO}`, other));
      addSignature(input, single, g.payload, g.signature, g.bundle);
      expectRejected(input, new RegExp(`payload names digest ${other}`));
    });

    it('rejects a payload naming another repository', async () => {
      const input = fresh();
      const g = await good(simpleSigningPayload(`${REGISTRY}/team/other`, single));
      addSignature(input, single, g.payload, g.signature, g.bundle);
      expectRejected(input, /payload names repository registry\.example\.com\/team\/other/);
    });

    it('accepts a docker-reference with a tag (MatchRepoDigestOrExact)', async () => {
      const input = fresh();
      const g = await good(simpleSigningPayload(`${REGISTRY}/${REPO}:1.0`, single));
      addSignature(input, single, g.payload, g.signature, g.bundle);
      expect(verifyImages(input).ok).toBe(true);
    });

    it('rejects a signature by a carried key outside the scope', async () => {
      const input = fresh();
      const payload = simpleSigningPayload(`${REGISTRY}/${REPO}`, single);
      const signature = signBlob(fx.keys.ecdsa.privateKey, payload);
      const bundle = await logHashedRekord(rekor.url, { payload, signature, publicKeyPem: fx.keys.ecdsa.publicKeyPem });
      addSignature(input, single, payload, signature, bundle);
      expectRejected(input, /signed by trust root other, which is not a root for registry\.example\.com\/team\/app \(roots: team\)/);
    });

    it('rejects a Rekor signed entry timestamp that does not verify', async () => {
      const input = fresh();
      const g = await good();
      const bundle = { ...g.bundle, Payload: { ...g.bundle.Payload, integratedTime: g.bundle.Payload.integratedTime + 1 } };
      addSignature(input, single, g.payload, g.signature, bundle);
      expectRejected(input, /Rekor signed entry timestamp does not verify with the key of log team-rekor/);
    });

    it("rejects a Rekor entry signed by another log's key", async () => {
      const input = fresh();
      const g = await good(undefined, otherRekor);
      addSignature(input, single, g.payload, g.signature, g.bundle);
      expectRejected(input, /Rekor entry was logged by log [0-9a-f]{16}…, whose key was not carried/);
    });

    it("rejects another log's timestamp relabelled with the carried log's ID", async () => {
      const input = fresh();
      const g = await good(undefined, otherRekor);
      const carriedId = (await good()).bundle.Payload.logID;
      addSignature(input, single, g.payload, g.signature, { ...g.bundle, Payload: { ...g.bundle.Payload, logID: carriedId } });
      expectRejected(input, /Rekor signed entry timestamp does not verify/);
    });

    it('rejects a signature without a Rekor entry when the policy requires the log', async () => {
      const input = fresh();
      const g = await good();
      addSignature(input, single, g.payload, g.signature);
      expectRejected(input, /policy requires a transparency-log entry/);
    });

    it('refuses a trust root whose blob was altered', () => {
      const r = root('team', 'public-key', fx.signingKey.publicKeyPem);
      const altered = { ...r, bytes: Buffer.from(fx.keys.ecdsa.publicKeyPem) };
      expect(() => loadTrust([altered])).toThrow(/trust root team: its blob hashes to sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64}/);
    });
  });

  describe('when the signature is a Sigstore bundle of another version or content', () => {
    let fx: FixtureSet;
    let index: Digest;
    let bundleJson: Record<string, unknown>;
    beforeAll(async () => {
      fx = await buildFixtures({ seed: 'verify-bundles', registry: REGISTRY, repository: REPO, signWith: 'ecdsa', rekorUrl: rekor.url, include: { single: false, unsigned: false, cosignSignatures: false, attestation: false, sbom: false } });
      index = fx.images.find((i) => i.tag === 'multi')!.digest;
      const sig = fx.referrers.find((r) => r.kind === 'signature' && r.subject === index)!;
      const layer = (parseManifest(fx.store.bytes(sig.digest)!) as unknown as { layers: { digest: string }[] }).layers[0]!;
      bundleJson = JSON.parse(fx.store.bytes(layer.digest)!.toString()) as Record<string, unknown>;
    });
    const roots = () => [root('team', 'public-key', fx.signingKey.publicKeyPem), root('team-rekor', 'rekor-key', rekor.publicKeyPem)];
    const only = (json: unknown, mediaType?: string, log = true) => {
      const input = inputFrom(fx, roots(), [teamPolicy(log)]);
      input.referrers.length = 0;
      addBundle(input, index, json, mediaType);
      return verifyImages(input).results.find((r) => r.digest === index)!;
    };

    it('verifies the v0.3 message-signature bundle with its Rekor entry (control)', () => {
      expect(only(bundleJson)).toMatchObject({ status: 'verified', root: 'team', log: 'team-rekor' });
    });

    for (const [v, mt] of [
      ['v0.2', MediaType.SigstoreBundle02],
      ['v0.1', MediaType.SigstoreBundle01],
    ] as const) {
      it(`verifies the same signature as a ${v} bundle`, () => {
        const r = only({ ...bundleJson, mediaType: mt }, mt);
        expect(r.status, r.reasons.join()).toBe('verified');
        expect(r.signatures[0]!.format).toBe(`sigstore bundle ${v}`);
      });
    }

    it('verifies a DSSE signature bundle whose statement names the image, and rejects one naming another digest', async () => {
      const statement = (digest: string) =>
        Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: `${REGISTRY}/${REPO}`, digest: { sha256: digest.slice(7) } }], predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {} }));
      const { dssePae } = await import('./support/fixtures/index.js');
      const dsse = (payload: Buffer) => ({
        mediaType: MediaType.SigstoreBundle03,
        verificationMaterial: { publicKey: { hint: '' }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
        dsseEnvelope: {
          payload: payload.toString('base64'),
          payloadType: MediaType.InToto,
          signatures: [{ sig: signBlob(fx.signingKey.privateKey, dssePae(MediaType.InToto, payload)).toString('base64'), keyid: '' }],
        },
      });
      expect(only(dsse(statement(index)), undefined, false)).toMatchObject({ status: 'verified', root: 'team' });
      const other = only(dsse(statement(sha256('elsewhere'))), undefined, false);
      expect(other.status).toBe('invalid');
      expect(other.reasons.join()).toMatch(new RegExp(`in-toto statement does not name ${index} as a subject`));
    });

    it('passes unsigned platform manifests of a verified index under a required policy', () => {
      const input = inputFrom(fx, roots(), [teamPolicy(true)]);
      const report = verifyImages(input);
      expect(report.ok).toBe(true);
      const children = report.results.filter((r) => r.platform !== undefined);
      expect(children).toHaveLength(2);
      for (const c of children) {
        expect(c).toMatchObject({ status: 'unsigned', failed: false, required: true });
        expect(c.reasons).toEqual([`not signed itself; its verified index ${index} names it by digest`]);
      }
    });

    it('rejects a message-signature bundle made for another image', () => {
      const r = only(bundleJson);
      expect(r.status).toBe('verified');
      const input = inputFrom(fx, roots(), [teamPolicy(true)]);
      input.referrers.length = 0;
      const child = fx.images.find((i) => i.tag === 'multi')!.children[0]!;
      addBundle(input, child, bundleJson);
      const c = verifyImages(input).results.find((x) => x.digest === child)!;
      expect(c.status).toBe('invalid');
      expect(c.reasons.join()).toMatch(/message digest is not that of the signing payload for .*: it signs another image or repository/);
    });

    it('rejects a keyless (certificate) bundle whose certificate cannot be read', () => {
      const vm = bundleJson.verificationMaterial as Record<string, unknown>;
      const r = only({ ...bundleJson, verificationMaterial: { ...vm, publicKey: undefined, certificate: { rawBytes: Buffer.from('not a cert').toString('base64') } } });
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/\(keyless\): the certificate cannot be read/);
    });
  });

  describe('when policies decide', () => {
    it('lets unsigned images through without a policy, and fails them where a signature is required', async () => {
      const fx = await buildFixtures({ seed: 'verify-policy', registry: REGISTRY, repository: REPO, include: { multi: false } });
      const roots = [root('team', 'public-key', fx.signingKey.publicKeyPem)];
      const open = verifyImages(inputFrom(fx, roots, []));
      expect(open.ok).toBe(true);
      expect(open.results.map((r) => r.status).sort()).toEqual(['unsigned', 'verified']);
      const strict = verifyImages(inputFrom(fx, roots, [teamPolicy(false)]));
      expect(strict.ok).toBe(false);
      expect(strict.failures).toHaveLength(1);
      expect(strict.failures[0]).toMatch(/registry\.example\.com\/team\/app:unsigned .*unsigned: no signature, and policy team requires one by team/);
    });

    it("applies the default Red Hat policy: release key and Red Hat's Rekor", async () => {
      const keys = await fixtureKeys();
      const fx = await buildFixtures({ seed: 'verify-redhat', registry: 'registry.redhat.io', repository: 'ubi9/ubi', keys, rekorUrl: rekor.url, include: { multi: false } });
      const roots = [root('redhat', 'public-key', keys.rsa.publicKeyPem), root('redhat-rekor', 'rekor-key', rekor.publicKeyPem)];
      const policies = effectivePolicies({ rootNames: roots.map((r) => r.name), fromArchive: [] });
      const report = verifyImages(inputFrom(fx, roots, policies));
      const single = report.results.find((r) => r.image.endsWith(':single'))!;
      expect(single).toMatchObject({ status: 'verified', root: 'redhat', log: 'redhat-rekor', policy: 'redhat', required: true });
      const unsigned = report.results.find((r) => r.image.endsWith(':unsigned'))!;
      expect(unsigned).toMatchObject({ status: 'unsigned', failed: true });
      expect(report.failures).toHaveLength(1);
    });
  });
});

describe('policyFor', () => {
  const p = (name: string, scopes: string[], origin: Policy['origin'] = 'archive'): Policy => ({ name, scopes, roots: ['x'], require: 'signature', transparencyLog: false, origin });
  const policies = [p('host', ['quay.io']), p('ns', ['quay.io/team']), p('repo', ['quay.io/team/app:1.0']), p('wild', ['*.example.com']), p('wilder', ['*.eu.example.com']), p('port', ['localhost:5000/a'])];
  it.each([
    ['quay.io/other/x', 'host'],
    ['quay.io/team/x', 'ns'],
    ['quay.io/team/app', 'ns'],
    ['quay.io/teamster/app', 'host'],
    ['registry.example.com/a', 'wild'],
    ['r.eu.example.com/a', 'wilder'],
    ['localhost:5000/a/b', 'port'],
    ['example.com/a', undefined],
    ['registry.redhat.io/ubi9/ubi', undefined],
  ])('%s is governed by %s (most specific scope wins)', (repo, want) => {
    expect(policyFor(policies, repo)?.name).toBe(want);
  });
  it('applies an individual-image scope (repo:tag, repo@digest) to that image only, above every other scope', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    const withDigest = [...policies, p('pinned', [`quay.io/team/app@${d}`])];
    expect(policyFor(policies, { repository: 'quay.io/team/app', tag: '1.0', digest: d })?.name).toBe('repo');
    expect(policyFor(policies, { repository: 'quay.io/team/app', tag: '2.0', digest: d })?.name).toBe('ns');
    expect(policyFor(withDigest, { repository: 'quay.io/team/app', tag: '2.0', digest: d })?.name).toBe('pinned');
    expect(policyFor(withDigest, { repository: 'quay.io/team/app', digest: `sha256:${'b'.repeat(64)}` })?.name).toBe('ns');
    expect(policyFor([p('port', ['localhost:5000/a:1'])], { repository: 'localhost:5000/a', tag: '1' })?.name).toBe('port');
  });
  it('prefers a --policy file over the archive on the same scope', () => {
    expect(policyFor([p('a', ['quay.io/team']), p('f', ['quay.io/team'], 'file')], 'quay.io/team/app')?.name).toBe('f');
  });
});
