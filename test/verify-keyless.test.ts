import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InventoryReferrer } from '../src/archive/inventory.js';
import { MemoryStore } from '../src/content/memory.js';
import { sha256, type Digest } from '../src/oci/digest.js';
import { encodeJson, type Manifest } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { cosignTag } from '../src/oci/referrers.js';
import { RegistryClient } from '../src/registry/client.js';
import { loadTrust, simpleSigningPayload, verifyImages, type Policy, type SubjectResult, type TrustRootData, type VerifyInput } from '../src/verify/index.js';
import { startDistribution, type StartedRegistry } from './support/distribution.js';
import { pushStore } from './support/fixtures/index.js';
import { bundleV03, keylessDsseBundle, legacyAnnotations, signKeyless, startKeyless, type KeylessSignature, type KeylessWorld } from './support/keyless.js';
import { runCli } from './support/run-cli.js';

const REPOSITORY = 'registry.example.com/team/app';
const ISSUER = 'https://token.actions.example.com';
const SUBJECT = 'https://github.example.com/team/app/.github/workflows/release.yml@refs/heads/main';
const IMAGE: Digest = sha256('an image manifest');

function trustedRoot(name: string, json: unknown): TrustRootData {
  const bytes = Buffer.from(JSON.stringify(json));
  return { name, kind: 'sigstore-trusted-root', digest: sha256(bytes), bytes };
}

function policy(o: Partial<Policy> = {}): Policy {
  return {
    name: 'team',
    scopes: ['registry.example.com/team'],
    roots: ['corp'],
    require: 'signature',
    transparencyLog: true,
    identity: { issuer: ISSUER, subject: SUBJECT },
    origin: 'file',
    ...o,
  };
}

type Input = VerifyInput & { manifests: Map<string, { manifest: Manifest }>; blobs: Map<string, Uint8Array>; referrers: InventoryReferrer[] };

function input(roots: TrustRootData[], policies: Policy[]): Input {
  return {
    images: [{ source: `${REPOSITORY}:1.0`, repository: REPOSITORY, tag: '1.0', digest: IMAGE, mediaType: MediaType.OciManifest, size: 17, platforms: [], skippedPlatforms: [] }],
    referrers: [],
    manifests: new Map(),
    blobs: new Map(),
    trust: loadTrust(roots),
    policies,
  };
}

function addManifest(i: Input, layers: { mediaType: string; bytes: Buffer; annotations?: Record<string, string> }[], artifactType?: string, kind: 'signature' | 'attestation' = 'signature'): void {
  const manifest = {
    schemaVersion: 2 as const,
    mediaType: MediaType.OciManifest,
    ...(artifactType ? { artifactType } : {}),
    config: { mediaType: MediaType.OciEmpty, digest: sha256('{}'), size: 2 },
    layers: layers.map((l) => {
      i.blobs.set(sha256(l.bytes), l.bytes);
      return { mediaType: l.mediaType, digest: sha256(l.bytes), size: l.bytes.length, ...(l.annotations ? { annotations: l.annotations } : {}) };
    }),
  };
  const bytes = encodeJson(manifest);
  const digest = sha256(bytes);
  i.manifests.set(digest, { manifest: manifest as Manifest });
  i.referrers.push({ subject: IMAGE, digest, mediaType: MediaType.OciManifest, size: bytes.length, kind, types: [], foundBy: [], repository: REPOSITORY });
}

/** A cosign legacy `.sig` manifest with a keyless layer. */
function addLegacy(i: Input, sig: KeylessSignature, payload: Buffer = sig.payload): void {
  addManifest(i, [{ mediaType: MediaType.CosignSimpleSigning, bytes: payload, annotations: legacyAnnotations(sig) }]);
}

function addBundle(i: Input, json: unknown): void {
  addManifest(i, [{ mediaType: MediaType.SigstoreBundle03, bytes: Buffer.from(JSON.stringify(json)) }], MediaType.SigstoreBundle03);
}

function only(i: Input): SubjectResult {
  const r = verifyImages(i).results;
  expect(r).toHaveLength(1);
  return r[0]!;
}

describe('keyless verification', () => {
  let world: KeylessWorld;
  let root: TrustRootData;
  let good: KeylessSignature;
  const payload = simpleSigningPayload(REPOSITORY, IMAGE);

  beforeAll(async () => {
    world = await startKeyless();
    root = trustedRoot('corp', world.trustedRoot());
    good = await signKeyless(world, payload, { issuer: ISSUER, subject: SUBJECT });
  });
  afterAll(async () => {
    await world?.stop();
  });

  describe('when the signature is valid', () => {
    it('verifies a cosign legacy .sig layer with certificate, chain and Rekor bundle', () => {
      const i = input([root], [policy()]);
      addLegacy(i, good);
      const r = only(i);
      expect(r.status).toBe('verified');
      expect(r.failed).toBe(false);
      expect(r.root).toBe('corp');
      expect(r.log).toBe(`corp#${world.rekor.url}`);
      expect(r.signatures[0]).toMatchObject({ ok: true, format: 'cosign simple-signing (keyless)', identity: `${SUBJECT} (${ISSUER})` });
    });

    it('verifies a Sigstore bundle v0.3 with a certificate (SET and inclusion proof)', () => {
      const i = input([root], [policy()]);
      addBundle(i, bundleV03(good));
      const r = only(i);
      expect(r.status).toBe('verified');
      expect(r.root).toBe('corp');
      expect(r.signatures[0]).toMatchObject({ ok: true, format: 'sigstore bundle v0.3 (keyless)' });
    });

    it('accepts a subject matched by subjectRegExp', () => {
      const i = input([root], [policy({ identity: { issuer: ISSUER, subjectRegExp: 'https://github\\.example\\.com/team/.*' } })]);
      addLegacy(i, good);
      expect(only(i).status).toBe('verified');
    });
  });

  describe('when a check fails', () => {
    it('rejects a wrong OIDC issuer', () => {
      const i = input([root], [policy({ identity: { issuer: 'https://accounts.example.org', subject: SUBJECT } })]);
      addLegacy(i, good);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.failed).toBe(true);
      expect(r.reasons.join()).toMatch(/certificate issuer \(OIDC\) is "https:\/\/token\.actions\.example\.com", the policy requires "https:\/\/accounts\.example\.org"/);
    });

    it('rejects a wrong subject', () => {
      const i = input([root], [policy({ identity: { issuer: ISSUER, subject: 'someone@example.org' } })]);
      addBundle(i, bundleV03(good));
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/certificate subject is ".*release\.yml@refs\/heads\/main", the policy requires "someone@example\.org"/);
    });

    it('rejects a subject the subjectRegExp does not match (anchored)', () => {
      const i = input([root], [policy({ identity: { issuer: ISSUER, subjectRegExp: 'team/app' } })]);
      addLegacy(i, good);
      expect(only(i).reasons.join()).toMatch(/does not match the policy's subjectRegExp "team\/app"/);
    });

    it('rejects a certificate from a CA that is not in the trusted root', async () => {
      const stranger = await signKeyless(world, payload, { issuer: ISSUER, subject: SUBJECT, fulcio: world.otherFulcio });
      const i = input([root], [policy()]);
      addLegacy(i, stranger);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/certificate does not chain to a Fulcio CA of trusted root corp/);
    });

    it('names a carried trusted root outside the scope that holds the CA', () => {
      const i = input([trustedRoot('elsewhere', world.trustedRoot()), trustedRoot('corp', { ...world.trustedRoot(), certificateAuthorities: [] })], [policy()]);
      addLegacy(i, good);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.signatures[0]).toMatchObject({ ok: false, foreign: 'elsewhere' });
      expect(r.reasons.join()).toMatch(/chains to trusted root elsewhere, which is not a root for registry\.example\.com\/team\/app/);
    });

    it('requires an SCT when the trusted root names a CT log', async () => {
      const noSct = await signKeyless(world, payload, { issuer: ISSUER, subject: SUBJECT, fulcio: world.otherFulcio });
      const json = world.trustedRoot() as { certificateAuthorities: { certChain: unknown }[] };
      const ca = { ...json.certificateAuthorities[0]!, certChain: { certificates: [{ rawBytes: world.otherFulcio.rootDer.toString('base64') }] } };
      const i = input([trustedRoot('corp', { ...json, certificateAuthorities: [ca] })], [policy()]);
      addLegacy(i, noSct);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/trusted root corp rejects it: .*expected 1 SCTs, got 0/);
      // the same certificate counts once the root names no CT log
      const j = input([trustedRoot('corp', { ...json, certificateAuthorities: [ca], ctlogs: [] })], [policy()]);
      addLegacy(j, noSct);
      expect(only(j).status).toBe('verified');
    });

    it('names the carried trusted root when the policy trusts keys only', () => {
      const i = input([root], [policy({ roots: [] })]);
      addLegacy(i, good);
      const r = only(i);
      expect(r.signatures[0]).toMatchObject({ ok: false, foreign: 'corp' });
      expect(r.reasons.join()).toMatch(/chains to trusted root corp, which is not a root for registry\.example\.com\/team\/app \(roots: none\)/);
    });

    it('rejects a signature logged outside the certificate validity (SET time)', async () => {
      const late = await signKeyless(world, payload, { issuer: ISSUER, subject: SUBJECT, rekor: world.lateRekor });
      for (const add of [addLegacy, (i: Input, s: KeylessSignature) => addBundle(i, bundleV03(s))]) {
        const i = input([root], [policy()]);
        add(i, late);
        const r = only(i);
        expect(r.status).toBe('invalid');
        expect(r.reasons.join()).toMatch(/signed outside the certificate's validity/);
      }
    });

    it('rejects a tampered payload', () => {
      const i = input([root], [policy()]);
      const tampered = Buffer.from(payload.toString('utf8').replace('cosign container image signature', 'cosign container image signaturE'));
      addLegacy(i, good, tampered);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/signature does not verify with the certificate's key: tampered payload or signature/);
    });

    it('rejects a bundle whose signature was altered', () => {
      const b = bundleV03(good) as { messageSignature: { signature: string } };
      const sig = Buffer.from(b.messageSignature.signature, 'base64');
      sig.writeUInt8(sig.readUInt8(sig.length - 1) ^ 1, sig.length - 1);
      const i = input([root], [policy()]);
      addBundle(i, { ...b, messageSignature: { ...b.messageSignature, signature: sig.toString('base64') } });
      expect(only(i).reasons.join()).toMatch(/tampered payload or signature/);
    });

    it('rejects a valid keyless signature for another repository, as made by the root', async () => {
      const other = await signKeyless(world, simpleSigningPayload('registry.example.com/team/other', IMAGE), { issuer: ISSUER, subject: SUBJECT });
      const i = input([root], [policy()]);
      addLegacy(i, other);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.signatures[0]).toMatchObject({ ok: false, signedBy: 'corp' });
      expect(r.reasons.join()).toMatch(/payload names repository registry\.example\.com\/team\/other, not registry\.example\.com\/team\/app/);
    });

    it('does not count a keyless signature under a policy without an identity', () => {
      const { identity: _none, ...rest } = policy();
      const i = input([root], [rest]);
      addLegacy(i, good);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/the policy names no keyless identity/);
    });

    it('needs a signing time: a signature without a Rekor entry fails even when the log is not required', async () => {
      const unlogged = await signKeyless(world, payload, { issuer: ISSUER, subject: SUBJECT, rekor: null });
      const i = input([root], [policy({ transparencyLog: false })]);
      addLegacy(i, unlogged);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/no verified signing time/);
    });

    it('rejects a Rekor entry signed by a log the trusted root does not name', () => {
      const json = world.trustedRoot() as { tlogs: unknown[] };
      const i = input([trustedRoot('corp', { ...json, tlogs: json.tlogs.slice(1) })], [policy()]);
      addLegacy(i, good);
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.reasons.join()).toMatch(/Rekor entry does not verify with trusted root corp/);
    });
  });

  describe('when an attestation is keyless (DSSE in a v0.1 bundle, logged as intoto)', () => {
    const statement = (digest: Digest) => ({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: REPOSITORY, digest: { sha256: digest.slice(7) } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: {},
    });
    const addAttestation = (i: Input, json: unknown) =>
      addManifest(i, [{ mediaType: MediaType.SigstoreBundle01, bytes: Buffer.from(JSON.stringify(json)) }], MediaType.SigstoreBundle01, 'attestation');

    it('verifies one that names the image', async () => {
      const i = input([root], [policy()]);
      addLegacy(i, good);
      addAttestation(i, await keylessDsseBundle(world, statement(IMAGE), { issuer: ISSUER, subject: SUBJECT }));
      const r = only(i);
      expect(r.status).toBe('verified');
      expect(r.signatures.find((x) => x.kind === 'attestation')).toMatchObject({ ok: true, format: 'sigstore bundle v0.1 (keyless)', root: 'corp' });
    });

    it('makes the image invalid when it names another digest', async () => {
      const i = input([root], [policy()]);
      addLegacy(i, good);
      addAttestation(i, await keylessDsseBundle(world, statement(sha256('another image')), { issuer: ISSUER, subject: SUBJECT }));
      const r = only(i);
      expect(r.status).toBe('invalid');
      expect(r.signatures.find((x) => x.kind === 'attestation')).toMatchObject({ ok: false, signedBy: 'corp' });
      expect(r.reasons.join()).toMatch(/in-toto statement does not name sha256:[0-9a-f]{64} as a subject/);
    });
  });

  describe('when no policy applies', () => {
    it('leaves the image unsigned: a keyless signature needs an identity', () => {
      const i = input([root], []);
      addLegacy(i, good);
      const r = only(i);
      expect(r.status).toBe('unsigned');
      expect(r.failed).toBe(false);
    });
  });
});

describe('keyless verification end to end: pack with trust.trustedRoots → verify → unpack (Distribution 2.8)', () => {
  let world: KeylessWorld;
  let src: StartedRegistry;
  let client: RegistryClient;
  let dir: string;
  const archive = () => path.join(dir, 'keyless.tar');

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-keyless-e2e-'));
    [world, src] = await Promise.all([startKeyless(), startDistribution()]);
    client = new RegistryClient({ plainHttp: () => true });
    const repository = `${src.host}/team/app`;
    // An image, its keyless cosign `.sig` tag, and a keyless Sigstore bundle v0.3 referrer.
    const store = new MemoryStore();
    const config = await store.add(MediaType.OciConfig, Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'));
    const layer = await store.add('application/vnd.oci.image.layer.v1.tar', Buffer.from('keyless layer'));
    const image = await store.add(MediaType.OciManifest, encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }));
    await store.tag(image, Buffer.alloc(0), '1.0');
    const sig = await signKeyless(world, simpleSigningPayload(repository, image.digest), { issuer: ISSUER, subject: SUBJECT });
    const payload = await store.add(MediaType.CosignSimpleSigning, sig.payload, { annotations: legacyAnnotations(sig) });
    const empty = await store.add(MediaType.OciConfig, Buffer.from('{}'));
    const sigManifest = await store.add(MediaType.OciManifest, encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: empty, layers: [payload] }));
    await store.tag(sigManifest, Buffer.alloc(0), cosignTag(image.digest, 'sig'));
    const bundle = await store.add(MediaType.SigstoreBundle03, Buffer.from(JSON.stringify(bundleV03(sig))));
    const emptyOci = await store.add(MediaType.OciEmpty, Buffer.from('{}'));
    await store.add(
      MediaType.OciManifest,
      encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: MediaType.SigstoreBundle03, config: emptyOci, layers: [bundle], subject: image }),
    );
    await pushStore(store, client.repository(src.host, 'team/app'), { fallbackIndexes: true });
    await writeFile(path.join(dir, 'trusted_root.json'), JSON.stringify(world.trustedRoot()));
    await writeFile(
      path.join(dir, 'set.yaml'),
      [
        'apiVersion: airlock.dev/v1alpha1',
        'kind: ImageSet',
        'images:',
        `  - ${repository}:1.0`,
        'attachments: all',
        'registries:',
        `  "${src.host}": {plainHTTP: true}`,
        'trust:',
        '  redhat: false',
        '  trustedRoots:',
        '    - {name: corp, path: trusted_root.json}',
        'policies:',
        `  - scopes: ["${src.host}/team"]`,
        '    roots: [corp]',
        `    identity: {issuer: "${ISSUER}", subject: "${SUBJECT}"}`,
        '',
      ].join('\n'),
    );
    const p = await runCli(['pack', '--config', path.join(dir, 'set.yaml'), '-o', archive()]);
    expect(p.code, p.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([world?.stop(), src?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('verify exits 0: both keyless signatures verify with the carried trusted root and the identity', async () => {
    const r = await runCli(['verify', archive(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as { ok: boolean; signatures: { status: string; root?: string; log?: string; signatures: { ok: boolean; format: string; identity?: string }[] }[] };
    expect(rep.ok).toBe(true);
    expect(rep.signatures).toEqual([expect.objectContaining({ status: 'verified', root: 'corp', log: `corp#${world.rekor.url}` })]);
    // the cosign .sig layer and the v0.3 bundle referrer, each with the certificate's identity
    expect(rep.signatures[0]!.signatures.map((x) => [x.ok, x.format, x.identity]).sort()).toEqual([
      [true, 'cosign simple-signing (keyless)', `${SUBJECT} (${ISSUER})`],
      [true, 'sigstore bundle v0.3 (keyless)', `${SUBJECT} (${ISSUER})`],
    ]);
  });

  it('with a policy of another identity, verify and unpack exit 3 and the destination stays empty', async () => {
    const pol = path.join(dir, 'wrong-identity.yaml');
    await writeFile(pol, ['policies:', `  - scopes: ["${src.host}/team"]`, '    roots: [corp]', `    identity: {issuer: "${ISSUER}", subject: "https://github.example.com/someone/else"}`, ''].join('\n'));
    const v = await runCli(['verify', archive(), '--policy', pol]);
    expect(v.code, v.stderr).toBe(3);
    const lines = v.stderr.split('\n').filter((l) => l.startsWith('airlock: verify: '));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/invalid: .*certificate subject is ".*release\.yml@refs\/heads\/main", the policy requires "https:\/\/github\.example\.com\/someone\/else"/);
    const dst = await startDistribution();
    try {
      const u = await runCli(['unpack', archive(), '--to', `${dst.host}/mirror`, '--plain-http', '--policy', pol, '--cluster-resources', path.join(dir, 'cr')]);
      expect(u.code, u.stderr).toBe(3);
      const res = await fetch(`${dst.url}/v2/_catalog`);
      expect(((await res.json()) as { repositories: string[] }).repositories).toEqual([]);
      await expect(readdir(path.join(dir, 'cr'))).rejects.toThrow();
    } finally {
      await dst.stop();
    }
  });
});
