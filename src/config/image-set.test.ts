import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AirlockError, ExitCode, exitCodeFor } from '../errors.js';
import { Reference } from '../oci/reference.js';
import {
  imageSetFromArgs,
  isBlocked,
  loadImageSet,
  platformsFor,
  registrySettingsFor,
  wantsPlatform,
  type ImageSet,
} from './image-set.js';
import { REDHAT_REKOR_KEY_URL } from './trust-policy.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/config');

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-config-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

let n = 0;
async function write(text: string, name = `set-${++n}.yaml`): Promise<string> {
  const f = path.join(dir, name);
  await fs.writeFile(f, text);
  return f;
}

async function load(text: string): Promise<ImageSet> {
  return loadImageSet(await write(text));
}

/** Load and return the CONFIG error's message with the temp file name replaced by FILE. */
async function configError(text: string): Promise<string> {
  const f = await write(text);
  try {
    await loadImageSet(f);
  } catch (e) {
    expect(e).toBeInstanceOf(AirlockError);
    expect((e as AirlockError).code).toBe('CONFIG');
    expect(exitCodeFor(e)).toBe(ExitCode.USAGE);
    return (e as AirlockError).message.split(f).join('FILE');
  }
  throw new Error('expected a CONFIG error');
}

const HEAD = 'apiVersion: airlock.dev/v1alpha1\nkind: ImageSet\n';
const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('loadImageSet', () => {
  describe('when the file is a minimal ImageSet', () => {
    it('fills in the defaults', async () => {
      const set = await loadImageSet(path.join(FIXTURES, 'minimal.yaml'));
      expect(set.images.map((i) => i.ref.toString())).toEqual(['quay.io/prometheus/node-exporter:v1.8.2']);
      expect(set.images[0]?.source).toEqual({ file: path.join(FIXTURES, 'minimal.yaml'), line: 4 });
      expect(set.signatures).toBe(true);
      expect(set.attachments.all).toBe(false);
      expect(set.attachments.types).toEqual([]);
      expect(set.platforms).toEqual([]);
      expect(set.registries.size).toBe(0);
      expect(set.trust).toEqual({ redhat: true, rekorKeyUrl: REDHAT_REKOR_KEY_URL, keys: [], trustedRoots: [], sigstorePublicGood: false });
      expect(set.policies).toEqual([]);
      expect(set.blocked).toEqual([]);
      expect(set.origin).toEqual({ file: path.join(FIXTURES, 'minimal.yaml'), kind: 'ImageSet' });
      expect(set.warnings).toEqual([]);
    });
  });

  describe('when the file sets every field (fixtures/config/imageset.yaml)', () => {
    it('reads each one', async () => {
      const file = path.join(FIXTURES, 'imageset.yaml');
      const set = await loadImageSet(file);
      expect(set.images.map((i) => i.ref.toString())).toEqual([
        'registry.redhat.io/ubi9/ubi:9.4',
        'quay.io/prometheus/node-exporter:v1.8.2',
      ]);
      expect(set.images[0]?.platforms).toBeUndefined();
      expect(set.images[1]?.platforms).toEqual([
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ]);
      expect(set.images[1]?.source.line).toBe(8);
      expect(set.signatures).toBe(true);
      expect(set.attachments.types).toEqual([
        'application/spdx',
        'text/spdx',
        'application/vnd.cyclonedx',
        'application/vnd.syft',
        'application/vnd.in-toto+json',
      ]);
      expect(set.platforms).toEqual([{ os: 'linux', architecture: 'amd64' }]);
      expect(registrySettingsFor(set, 'localhost:5000')).toEqual({ plainHTTP: true });
      expect(registrySettingsFor(set, 'registry.internal.example')).toEqual({ plainHTTP: false, caFile: path.join(FIXTURES, 'ca.pem') });
      expect(registrySettingsFor(set, 'quay.io')).toEqual({ plainHTTP: false });
      expect(set.trust.keys).toEqual([{ name: 'team-key', path: path.join(FIXTURES, 'cosign.pub'), source: { file, line: 22 } }]);
      expect(set.trust.redhat).toBe(true);
      expect(set.policies.map((p) => [p.scopes, p.roots, p.require, p.transparencyLog])).toEqual([
        [['registry.redhat.io', 'quay.io/openshift-release-dev'], ['redhat'], 'signature', true],
        [['localhost:5000'], ['team-key'], 'signature', false],
        [['*.internal.example'], [], 'none', true],
      ]);
    });

    it('describes itself as plain JSON without local directories', async () => {
      const set = await loadImageSet(path.join(FIXTURES, 'imageset.yaml'));
      const json = JSON.parse(JSON.stringify(set)) as Record<string, unknown>;
      expect(json).toMatchObject({
        apiVersion: 'airlock.dev/v1alpha1',
        kind: 'ImageSet',
        origin: { kind: 'ImageSet', file: 'imageset.yaml' },
        images: [
          { ref: 'registry.redhat.io/ubi9/ubi:9.4' },
          { ref: 'quay.io/prometheus/node-exporter:v1.8.2', platforms: ['linux/amd64', 'linux/arm64/v8'] },
        ],
        signatures: true,
        platforms: ['linux/amd64'],
        registries: { 'localhost:5000': { plainHTTP: true }, 'registry.internal.example': { plainHTTP: false, caFile: 'ca.pem' } },
        trust: { keys: [{ name: 'team-key', path: 'cosign.pub' }] },
      });
      expect(JSON.stringify(json)).not.toContain(FIXTURES);
    });
  });

  describe('when an image has neither tag nor digest', () => {
    it('means :latest, as docker does', async () => {
      const set = await load(`${HEAD}images:\n  - quay.io/a/b\n  - quay.io/a/c@${DIGEST}\n`);
      expect(set.images.map((i) => i.ref.toString())).toEqual(['quay.io/a/b:latest', `quay.io/a/c@${DIGEST}`]);
    });
  });

  describe('when fields take their other forms', () => {
    it('reads attachments: all, signatures: false, a comma-separated attachments string', async () => {
      const a = await load(`${HEAD}images: [quay.io/a/b:1]\nsignatures: false\nattachments: all\n`);
      expect(a.signatures).toBe(false);
      expect(a.attachments.all).toBe(true);
      const b = await load(`${HEAD}images: [quay.io/a/b:1]\nattachments: "spdx, application/vnd.cyclonedx"\n`);
      expect(b.attachments.types).toEqual(['application/spdx', 'text/spdx', 'application/vnd.cyclonedx']);
    });
    it('reads a * registry entry as the default for every other registry', async () => {
      const set = await load(`${HEAD}images: [quay.io/a/b:1]\nregistries:\n  "*":\n    plainHTTP: true\n  quay.io: {}\n`);
      expect(registrySettingsFor(set, 'example.com:5000')).toEqual({ plainHTTP: true });
      expect(registrySettingsFor(set, 'quay.io')).toEqual({ plainHTTP: false });
    });
    it('reads trusted roots and the public-good root, and lets policies use them', async () => {
      const root = await write('{}', 'trusted_root.json');
      const set = await load(
        `${HEAD}images: [quay.io/a/b:1]\ntrust:\n  redhat: false\n  sigstorePublicGood: true\n  trustedRoots:\n    - name: corp\n      path: ${path.basename(root)}\n` +
          `policies:\n  - scopes: [quay.io/a]\n    roots: [sigstore-public-good, corp]\n`,
      );
      expect(set.trust.redhat).toBe(false);
      expect(set.trust.sigstorePublicGood).toBe(true);
      expect(set.trust.trustedRoots.map((r) => [r.name, r.path])).toEqual([['corp', root]]);
      expect(set.policies[0]?.roots).toEqual(['sigstore-public-good', 'corp']);
    });
  });

  describe('when the file is wrong', () => {
    const cases: [string, string, string | RegExp][] = [
      ['an invalid reference', `${HEAD}images:\n  - quay.io/a/b:1\n  - quay.io/a/b:2\n  - "x y"\n`,
        /^FILE:6: images\[2\]: "x y" is not a valid image reference \(repository "x y" is not valid .*\); write registry\/repository\[:tag\]\[@digest\]$/],
      ['an invalid ref in the mapping form', `${HEAD}images:\n  - ref: quay.io/A/b\n`, /^FILE:4: images\[0\]\.ref: "quay.io\/A\/b" is not a valid image reference/],
      ['an unknown top-level field, close to a known one', `${HEAD}images: [quay.io/a/b:1]\nsignature: true\n`,
        'FILE:4: signature: unknown field (did you mean "signatures"?); known fields: apiVersion, kind, images, signatures, attachments, platforms, registries, trust, policies'],
      ['an unknown field far from any', `${HEAD}images: [quay.io/a/b:1]\nzzzzzz: 1\n`, /^FILE:4: zzzzzz: unknown field; known fields/],
      ['an unknown image field', `${HEAD}images:\n  - ref: quay.io/a/b:1\n    platform: [linux/amd64]\n`,
        /^FILE:5: images\[0\]\.platform: unknown field \(did you mean "platforms"\?\); known fields: ref, platforms$/],
      ['a missing ref', `${HEAD}images:\n  - platforms: [linux/amd64]\n`, /^FILE:4: images\[0\]\.ref: is missing the required field "ref"$/],
      ['a wrong apiVersion', 'apiVersion: airlock.dev/v1\nkind: ImageSet\nimages: [quay.io/a/b:1]\n',
        'FILE:1: apiVersion: "airlock.dev/v1" is not supported for kind ImageSet; accepted: airlock.dev/v1alpha1 ImageSet, or mirror.openshift.io/v2alpha1 ImageSetConfiguration'],
      ['a wrong kind', 'apiVersion: airlock.dev/v1alpha1\nkind: ImageList\nimages: [quay.io/a/b:1]\n',
        'FILE:2: kind: "ImageList" is not supported; accepted: airlock.dev/v1alpha1 ImageSet, or mirror.openshift.io/v2alpha1 ImageSetConfiguration'],
      ['a missing kind', 'apiVersion: airlock.dev/v1alpha1\nimages: [quay.io/a/b:1]\n', /^FILE:1: kind: is missing the required field "kind"$/],
      ['no images', `${HEAD}images: []\n`, 'FILE:3: images: must list at least one image (or leave the field out and give images as arguments)'],
      ['a duplicate image', `${HEAD}images:\n  - quay.io/a/b\n  - ref: quay.io/a/b:latest\n`,
        'FILE:5: images[1]: quay.io/a/b:latest is already listed at line 4; list each image once'],
      ['images not a list', `${HEAD}images: quay.io/a/b:1\n`, 'FILE:3: images: must be a list of image references, not the string "quay.io/a/b:1"'],
      ['signatures not a boolean', `${HEAD}images: [quay.io/a/b:1]\nsignatures: "yes"\n`, 'FILE:4: signatures: must be true or false, not the string "yes"'],
      ['a bad attachment name', `${HEAD}images: [quay.io/a/b:1]\nattachments: [sbom, cyclonedxx]\n`,
        /^FILE:4: attachments: attachment type "cyclonedxx" .*\(did you mean "cyclonedx"\?\)/],
      ['a bad platform', `${HEAD}images: [quay.io/a/b:1]\nplatforms:\n  - linux/amd64\n  - linux\n`,
        /^FILE:6: platforms\[1\]: platform "linux": has the wrong number of parts; write os\/arch\[\/variant\]/],
      ['an empty image platform list', `${HEAD}images:\n  - ref: quay.io/a/b:1\n    platforms: []\n`, /^FILE:5: images\[0\]\.platforms: must list at least one platform/],
      ['a registry that is not a host', `${HEAD}images: [quay.io/a/b:1]\nregistries:\n  myregistry:\n    plainHTTP: true\n`,
        /^FILE:5: registries\.myregistry: "myregistry" is not a registry host\[:port\]/],
      ['a registry setting typo', `${HEAD}images: [quay.io/a/b:1]\nregistries:\n  localhost:5000:\n    plainHttp: true\n`,
        /^FILE:6: registries\["localhost:5000"\]\.plainHttp: unknown field \(did you mean "plainHTTP"\?\)/],
      ['a missing caFile', `${HEAD}images: [quay.io/a/b:1]\nregistries:\n  quay.io:\n    caFile: nowhere.pem\n`,
        /^FILE:6: registries\["quay.io"\]\.caFile: cannot read .*nowhere\.pem \(ENOENT\); relative paths are resolved against the config file's directory$/],
      ['caFile with plainHTTP', `${HEAD}images: [quay.io/a/b:1]\nregistries:\n  quay.io:\n    plainHTTP: true\n    caFile: x.pem\n`,
        /^FILE:7: registries\["quay.io"\]\.caFile: has no effect with plainHTTP: true/],
      ['a YAML syntax error', `${HEAD}images:\n  - quay.io/a/b:1\n   - oops: [\n`, /^FILE:4:5: YAML syntax error: Implicit keys need to be on a single line/],
      ['a duplicate key', `${HEAD}images: [quay.io/a/b:1]\nimages: [quay.io/a/b:2]\n`, /^FILE:4:1: YAML syntax error: Map keys must be unique/],
      ['an alias', `${HEAD}images: &x [quay.io/a/b:1]\nplatforms: *x\n`, /^FILE:4: platforms: YAML aliases \(\*name\) are not supported here/],
      ['an empty file', '', 'FILE:1: the file is empty; it needs apiVersion, kind and images'],
      ['a list at the top', '- a\n', /^FILE:1: must be a mapping \(apiVersion, kind, …\), not a list$/],
      ['oc-mirror fields in an ImageSet', `${HEAD}images: [quay.io/a/b:1]\nmirror: {}\n`, /^FILE:4: mirror: is not a field of this kind \(it belongs to oc-mirror's ImageSetConfiguration\)$/],
      ['a key with a bad name', `${HEAD}images: [quay.io/a/b:1]\ntrust:\n  keys:\n    - name: Team Key\n      path: k.pub\n`,
        /^FILE:6: trust\.keys\[0\]\.name: "Team Key" is not a valid name/],
      ['a key without a file', `${HEAD}images: [quay.io/a/b:1]\ntrust:\n  keys:\n    - name: team\n      path: absent.pub\n`,
        /^FILE:7: trust\.keys\[0\]\.path: cannot read .*absent\.pub \(ENOENT\)/],
      ['a duplicate root name', `${HEAD}images: [quay.io/a/b:1]\ntrust:\n  keys:\n    - {name: a, path: x}\n    - {name: a, path: y}\n`,
        /^FILE:7: trust\.keys\[1\]\.name: "a" is already used at trust\.keys\[0\]\.name \(line 6\)/],
      ['a built-in root name', `${HEAD}images: [quay.io/a/b:1]\ntrust:\n  keys:\n    - {name: redhat, path: x}\n`,
        /^FILE:6: trust\.keys\[0\]\.name: "redhat" is the name of a built-in trust root/],
      ['a bad rekorKeyUrl', `${HEAD}images: [quay.io/a/b:1]\ntrust:\n  rekorKeyUrl: ftp://x\n`, /^FILE:5: trust\.rekorKeyUrl: "ftp:\/\/x" is not an http\(s\) URL/],
      ['a policy naming an unknown root', `${HEAD}images: [quay.io/a/b:1]\npolicies:\n  - scopes: [quay.io]\n    roots: [corp]\n`,
        'FILE:6: policies[0].roots[0]: no trust root named "corp"; known: redhat'],
      ['a policy naming a disabled built-in root', `${HEAD}images: [quay.io/a/b:1]\ntrust: {redhat: false}\npolicies:\n  - scopes: [quay.io]\n    roots: [redhat]\n`,
        'FILE:7: policies[0].roots[0]: no trust root named "redhat"; known: (none) (enable it under trust:)'],
      ['a policy without roots', `${HEAD}images: [quay.io/a/b:1]\npolicies:\n  - scopes: [quay.io]\n`,
        'FILE:5: policies[0].roots: a policy that requires a signature must name at least one trust root in roots'],
      ['a bad policy requirement', `${HEAD}images: [quay.io/a/b:1]\npolicies:\n  - scopes: [quay.io]\n    roots: [redhat]\n    require: always\n`,
        'FILE:7: policies[0].require: "always" is not one of: signature, none'],
      ['roots with require none', `${HEAD}images: [quay.io/a/b:1]\npolicies:\n  - scopes: [quay.io]\n    roots: [redhat]\n    require: none\n`,
        'FILE:6: policies[0].roots: has no effect with require: none; remove roots or require a signature'],
      ['a bad scope', `${HEAD}images: [quay.io/a/b:1]\npolicies:\n  - scopes: [quay.io, "quay.io/*"]\n    roots: [redhat]\n`,
        /^FILE:5: policies\[0\]\.scopes\[1\]: "quay.io\/\*" may use \* only as a leading "\*\." wildcard; write a host/],
      ['a scope without a host', `${HEAD}images: [quay.io/a/b:1]\npolicies:\n  - scopes: [library/ubuntu]\n    roots: [redhat]\n`,
        /^FILE:5: policies\[0\]\.scopes\[0\]: "library\/ubuntu" does not start with a registry host/],
    ];
    it.each(cases)('names file, line and field for %s', async (_what, text, expected) => {
      const msg = await configError(text);
      if (typeof expected === 'string') expect(msg).toBe(expected);
      else expect(msg).toMatch(expected);
    });

    it('reports a missing file with the path and what to check', async () => {
      const f = path.join(dir, 'does-not-exist.yaml');
      await expect(loadImageSet(f)).rejects.toMatchObject({
        code: 'CONFIG',
        message: `${f}: cannot read the config file (ENOENT); check the path given to --config`,
      });
    });

    it('records file and line in the error detail', async () => {
      const f = await write(`${HEAD}images:\n  - "x y"\n`);
      await expect(loadImageSet(f)).rejects.toMatchObject({ detail: { file: f, line: 4, field: 'images[0]' } });
    });
  });
});

describe('oc-mirror ImageSetConfiguration', () => {
  describe('when it lists additionalImages and blockedImages (fixtures/config/oc-mirror-imageset.yaml)', () => {
    it('takes additionalImages as images and blockedImages as blocked', async () => {
      const file = path.join(FIXTURES, 'oc-mirror-imageset.yaml');
      const set = await loadImageSet(file);
      expect(set.origin).toEqual({ file, kind: 'ImageSetConfiguration' });
      expect(set.images.map((i) => i.ref.toString())).toEqual([
        'registry.redhat.io/ubi9/ubi:latest',
        'registry.redhat.io/ubi9/ubi-minimal@sha256:6f5b3ae1f2b4e5c1d0a7a8e4b7e1fd0b0b3c3d1a2e8f0c6a1b2c3d4e5f6a7b8c',
        'quay.io/prometheus/node-exporter:v1.8.2',
      ]);
      expect(set.images[2]?.source).toEqual({ file, line: 11 });
      expect(set.blocked.map((b) => b.toString())).toEqual(['docker.io/library/alpine', 'quay.io/prometheus/node-exporter:v1.0.0']);
      expect(set.signatures).toBe(true);
      expect(set.attachments.types).toEqual([]);
      expect(set.trust.redhat).toBe(true);
    });
    it('blocks a whole repository, or one tag of it', async () => {
      const set = await loadImageSet(path.join(FIXTURES, 'oc-mirror-imageset.yaml'));
      expect(isBlocked(set, Reference.parse('alpine:3.20'))).toBe(true);
      expect(isBlocked(set, Reference.parse(`docker.io/library/alpine@${DIGEST}`))).toBe(true);
      expect(isBlocked(set, Reference.parse('quay.io/prometheus/node-exporter:v1.0.0'))).toBe(true);
      expect(isBlocked(set, Reference.parse('quay.io/prometheus/node-exporter:v1.8.2'))).toBe(false);
      expect(isBlocked(set, Reference.parse('quay.io/prometheus/alpine:1'))).toBe(false);
    });
  });

  const OCM = 'kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\n';
  it.each([
    ['platform', `${OCM}mirror:\n  additionalImages:\n    - name: quay.io/a/b:1\n  platform:\n    channels:\n      - name: stable-4.16\n`,
      /^FILE:6: mirror\.platform: OpenShift release payloads \(mirror\.platform\) are not supported by airlock; list the release image by digest under additionalImages/],
    ['operators', `${OCM}mirror:\n  operators:\n    - catalog: registry.redhat.io/redhat/redhat-operator-index:v4.16\n`,
      /^FILE:4: mirror\.operators: operator catalogs \(mirror\.operators\) are not supported/],
    ['helm', `${OCM}mirror:\n  helm:\n    repositories: []\n`, /^FILE:4: mirror\.helm: Helm charts \(mirror\.helm\) are not supported/],
  ])('refuses mirror.%s, naming the section', async (_s, text, expected) => {
    expect(await configError(text)).toMatch(expected);
  });

  it('refuses other apiVersions, listing the accepted ones', async () => {
    expect(await configError('kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v1alpha2\nmirror: {}\n')).toBe(
      'FILE:2: apiVersion: "mirror.openshift.io/v1alpha2" is not supported for kind ImageSetConfiguration; accepted: airlock.dev/v1alpha1 ImageSet, or mirror.openshift.io/v2alpha1 ImageSetConfiguration',
    );
  });
  it('refuses a file with no additionalImages', async () => {
    expect(await configError(`${OCM}mirror:\n  blockedImages:\n    - name: quay.io/a/b\n`)).toBe(
      'FILE:3: mirror.additionalImages: lists no images; airlock mirrors mirror.additionalImages only',
    );
  });
  it('refuses airlock fields in an oc-mirror file', async () => {
    expect(await configError(`${OCM}mirror:\n  additionalImages: [{name: quay.io/a/b:1}]\nattachments: all\n`)).toMatch(
      /^FILE:5: attachments: is not a field of this kind \(it belongs to airlock's ImageSet/,
    );
  });
  it('refuses an unknown image field', async () => {
    expect(await configError(`${OCM}mirror:\n  additionalImages:\n    - nam: quay.io/a/b:1\n`)).toMatch(
      /^FILE:5: mirror\.additionalImages\[0\]\.nam: unknown field \(did you mean "name"\?\)/,
    );
  });
  it('lists the oc-mirror fields for an unknown top-level field', async () => {
    expect(await configError(`${OCM}mirrors:\n  additionalImages: [{name: quay.io/a/b:1}]\n`)).toBe(
      'FILE:3: mirrors: unknown field (did you mean "mirror"?); known fields: apiVersion, kind, mirror, archiveSize',
    );
  });
  it('packs a repeated additionalImage once, with a warning', async () => {
    const f = await write(`${OCM}mirror:\n  additionalImages:\n    - name: quay.io/a/b:1\n    - name: quay.io/a/b:1\n`);
    const set = await loadImageSet(f);
    expect(set.images.map((i) => i.ref.toString())).toEqual(['quay.io/a/b:1']);
    expect(set.warnings).toEqual([`${f}:6: quay.io/a/b:1 is listed again (first at line 5); packed once`]);
  });
  it('ignores archiveSize with a warning', async () => {
    const f = await write(`${OCM}archiveSize: 4\nmirror:\n  additionalImages: [{name: quay.io/a/b:1}]\n`);
    const set = await loadImageSet(f);
    expect(set.warnings).toEqual([`${f}:3: archiveSize is ignored: airlock writes one archive file`]);
    expect(set.images.map((i) => i.ref.toString())).toEqual(['quay.io/a/b:1']);
  });
});

describe('imageSetFromArgs', () => {
  describe('when there is no file', () => {
    it('builds the set from the references and defaults', () => {
      const set = imageSetFromArgs(['quay.io/a/b:1', 'alpine'], {});
      expect(set.images.map((i) => i.ref.toString())).toEqual(['quay.io/a/b:1', 'docker.io/library/alpine:latest']);
      expect(set.images[0]?.source).toEqual({});
      expect(set.origin).toEqual({ kind: 'arguments' });
      expect(set.signatures).toBe(true);
      expect(set.attachments.types).toEqual([]);
      expect(set.trust.redhat).toBe(true);
    });
    it('refuses an empty set', () => {
      expect(() => imageSetFromArgs([], {})).toThrow(/nothing to pack: give one or more image references, or --config FILE/);
    });
    it('refuses a bad reference with USAGE, naming the argument', () => {
      try {
        imageSetFromArgs(['quay.io/a/b:1', 'x y'], {});
        expect.unreachable();
      } catch (e) {
        expect((e as AirlockError).code).toBe('USAGE');
        expect((e as AirlockError).message).toMatch(/^image argument 2: "x y" is not a valid image reference/);
      }
    });
    it('refuses a bad --platform and --attachments with USAGE', () => {
      expect(() => imageSetFromArgs(['quay.io/a/b:1'], { platform: ['linux'] })).toThrow(/platform "linux"/);
      expect(() => imageSetFromArgs(['quay.io/a/b:1'], { attachments: 'sboms' })).toThrow(/did you mean "sbom"/);
    });
  });

  describe('when flags and a file are both given', () => {
    let base: ImageSet;
    beforeAll(async () => {
      base = await loadImageSet(path.join(FIXTURES, 'imageset.yaml'));
    });

    it('keeps the file when no flag is given (commander defaults do not override)', () => {
      const set = imageSetFromArgs([], { signatures: true, plainHttp: false }, base);
      expect(set.images).toEqual(base.images);
      expect(set.signatures).toBe(true);
      expect(set.attachments.types).toEqual(base.attachments.types);
      expect(set.platforms).toEqual(base.platforms);
      expect(set.registries).toEqual(base.registries);
      expect(set.trust).toBe(base.trust);
      expect(set.policies).toEqual(base.policies);
      expect(set.origin).toEqual(base.origin);
    });
    it('adds the command-line references after the file\'s, without duplicates', () => {
      const set = imageSetFromArgs(['registry.redhat.io/ubi9/ubi:9.4', 'quay.io/x/y:2'], {}, base);
      expect(set.images.map((i) => i.ref.toString())).toEqual([
        'registry.redhat.io/ubi9/ubi:9.4',
        'quay.io/prometheus/node-exporter:v1.8.2',
        'quay.io/x/y:2',
      ]);
    });
    it('--no-signatures overrides signatures: true', () => {
      expect(imageSetFromArgs([], { signatures: false }, base).signatures).toBe(false);
    });
    it('--attachments overrides attachments', () => {
      const set = imageSetFromArgs([], { attachments: 'all' }, base);
      expect(set.attachments.all).toBe(true);
      expect(imageSetFromArgs([], { attachments: 'none' }, base).attachments.types).toEqual([]);
    });
    it('--platform overrides the global filter and every image\'s platforms', () => {
      const set = imageSetFromArgs([], { platform: ['linux/s390x', 'linux/ppc64le'] }, base);
      expect(set.platforms).toEqual([
        { os: 'linux', architecture: 's390x' },
        { os: 'linux', architecture: 'ppc64le' },
      ]);
      for (const im of set.images) expect(platformsFor(set, im)).toEqual(set.platforms);
      const im = set.images[1] as (typeof set.images)[number];
      expect(wantsPlatform(set, im, { os: 'linux', architecture: 's390x' })).toBe(true);
      expect(wantsPlatform(set, im, { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(false);
    });
    it('--plain-http makes every registry plain HTTP', () => {
      const set = imageSetFromArgs([], { plainHttp: true }, base);
      expect(registrySettingsFor(set, 'registry.internal.example')).toEqual({ plainHTTP: true });
      expect(registrySettingsFor(set, 'anything.example:5000')).toEqual({ plainHTTP: true });
    });
    it('keeps the per-image platforms of the file when --platform is absent', () => {
      const set = imageSetFromArgs([], {}, base);
      const im = set.images[1] as (typeof set.images)[number];
      expect(wantsPlatform(set, im, { os: 'linux', architecture: 'arm64' })).toBe(true);
      expect(wantsPlatform(set, im, { os: 'linux', architecture: 's390x' })).toBe(false);
      const first = set.images[0] as (typeof set.images)[number];
      expect(wantsPlatform(set, first, { os: 'linux', architecture: 'arm64' })).toBe(false);
      expect(wantsPlatform(set, first, { os: 'linux', architecture: 'amd64' })).toBe(true);
      expect(wantsPlatform(set, first, undefined)).toBe(true);
    });
    it('keeps oc-mirror blockedImages', async () => {
      const oc = await loadImageSet(path.join(FIXTURES, 'oc-mirror-imageset.yaml'));
      const set = imageSetFromArgs(['alpine:3'], {}, oc);
      expect(isBlocked(set, Reference.parse('alpine:3'))).toBe(true);
    });
  });
});
