import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { clusterPolicies } from '../src/cluster/policies.js';
import { mirrorSets } from '../src/cluster/mirror-sets.js';
import type { PlannedRepository } from '../src/commands/unpack.js';
import { sha256 } from '../src/oci/digest.js';
import { DEFAULT_POLICIES, type Policy, type TrustRootData } from '../src/verify/index.js';
import { fixtureKeys } from './support/fixtures/index.js';
import { startKeyless } from './support/keyless.js';

/**
 * A checker for the subset of OpenAPI v3 / Kubernetes structural schema that the
 * OpenShift CRDs use on the fields we write: type, required, properties (unknown
 * fields are errors: the API server would prune them), enum, min/maxItems,
 * min/maxLength, pattern, format byte, list-type set. Of the CEL rules
 * (x-kubernetes-validations) it evaluates the shapes these CRDs use on our fields
 * (matches, contains('*') guards, startsWith/endsWith of decoded bytes, has()
 * conditionals) and counts the rest as skipped, so a test can see what was checked.
 */
type Schema = Record<string, unknown> & {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  'x-kubernetes-validations'?: { rule: string; message: string }[];
};

interface Stats {
  rulesChecked: number;
  rulesSkipped: string[];
}

const CRD_DIR = fileURLToPath(new URL('../fixtures/openshift-crds/', import.meta.url));

async function crdSchema(file: string): Promise<Schema> {
  const crd = parse(await readFile(`${CRD_DIR}${file}`, 'utf8')) as { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } };
  return crd.spec.versions.find((v) => v.name === 'v1')!.schema.openAPIV3Schema;
}

function celRegex(re: string): RegExp {
  // CEL string literal escapes (\\\\ → \\) and the RE2 POSIX class the CRDs use
  return new RegExp(re.replace(/\\\\/g, '\\').replace(/\[\[:xdigit:\]\]/g, '[0-9A-Fa-f]'));
}

function evalRule(rule: string, self: unknown, schema: Schema): boolean | undefined {
  const str = typeof self === 'string' ? self : undefined;
  // format: byte values are compared as their decoded bytes by string(self)
  const decoded = str !== undefined && schema.format === 'byte' ? Buffer.from(str, 'base64').toString('utf8') : str;
  let m: RegExpExecArray | null;
  if ((m = /^string\(self\)\.startsWith\('([^']*)'\)$/.exec(rule))) return decoded!.startsWith(m[1]!);
  if ((m = /^string\(self\)\.endsWith\('([^']*)'\) \|\| string\(self\)\.endsWith\('([^']*)'\)$/.exec(rule))) {
    const a = m[1]!.replace(/\\n/g, '\n');
    return decoded!.endsWith(a) || decoded!.endsWith(m[2]!);
  }
  if ((m = /^!self\.contains\('\*'\) \? self\.matches\('(.*)'\) : true$/.exec(rule))) return str!.includes('*') || celRegex(m[1]!).test(str!);
  if ((m = /^self\.contains\('\*'\) \? self\.matches\('(.*)'\) : true$/.exec(rule))) return !str!.includes('*') || celRegex(m[1]!).test(str!);
  if ((m = /^self\.matches\('(.*)'\)$/.exec(rule))) return celRegex(m[1]!).test(str!);
  if ((m = /^self\.matches\('(.*)'\)\? self\.matches\('(.*)'\): true$/.exec(rule))) return !celRegex(m[1]!).test(str!) || celRegex(m[2]!).test(str!);
  if ((m = /^\(?has\(self\.(\w+)\) && self\.\1 == '(\w+)'\)? \? has\(self\.(\w+)\) : !has\(self\.\3\)$/.exec(rule))) {
    const o = self as Record<string, unknown>;
    return o[m[1]!] === m[2] ? o[m[3]!] !== undefined : o[m[3]!] === undefined;
  }
  if (rule === "size(self.split('/')[0].split('.')) == 1 ? self.split('/')[0].split('.')[0].split(':')[0] == 'localhost' : true") {
    const host = str!.split('/')[0]!;
    return host.split('.').length !== 1 || host.split('.')[0]!.split(':')[0] === 'localhost';
  }
  return undefined;
}

function validate(schema: Schema, v: unknown, path: string, errors: string[], stats: Stats): void {
  const t = schema.type;
  const isObj = typeof v === 'object' && v !== null && !Array.isArray(v);
  if (t === 'object' && !isObj) return void errors.push(`${path}: must be an object`);
  if (t === 'array' && !Array.isArray(v)) return void errors.push(`${path}: must be an array`);
  if (t === 'string' && typeof v !== 'string') return void errors.push(`${path}: must be a string`);
  if (t === 'integer' && !Number.isInteger(v)) return void errors.push(`${path}: must be an integer`);
  if (t === 'boolean' && typeof v !== 'boolean') return void errors.push(`${path}: must be a boolean`);
  if (schema.enum && !schema.enum.includes(v)) errors.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof v === 'string') {
    if (typeof schema.maxLength === 'number' && v.length > schema.maxLength) errors.push(`${path}: longer than ${schema.maxLength}`);
    if (typeof schema.minLength === 'number' && v.length < schema.minLength) errors.push(`${path}: shorter than ${schema.minLength}`);
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(v)) errors.push(`${path}: does not match ${schema.pattern}`);
    if (schema.format === 'byte' && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) errors.push(`${path}: not base64`);
  }
  if (Array.isArray(v)) {
    if (typeof schema.maxItems === 'number' && v.length > schema.maxItems) errors.push(`${path}: more than ${schema.maxItems} items`);
    if (typeof schema.minItems === 'number' && v.length < schema.minItems) errors.push(`${path}: fewer than ${schema.minItems} items`);
    if (schema['x-kubernetes-list-type'] === 'set' && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) errors.push(`${path}: duplicate items in a set`);
    if (schema.items) v.forEach((x, i) => validate(schema.items!, x, `${path}[${i}]`, errors, stats));
  }
  if (isObj) {
    const o = v as Record<string, unknown>;
    for (const r of schema.required ?? []) if (o[r] === undefined) errors.push(`${path}: missing required field ${r}`);
    if (schema.properties) {
      for (const [k, x] of Object.entries(o)) {
        const s = schema.properties[k];
        if (!s) errors.push(`${path}.${k}: unknown field`);
        else validate(s, x, `${path}.${k}`, errors, stats);
      }
    }
  }
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const ok = evalRule(rule.rule, v, schema);
    if (ok === undefined) stats.rulesSkipped.push(rule.rule);
    else {
      stats.rulesChecked++;
      if (!ok) errors.push(`${path}: ${rule.message}`);
    }
  }
}

function check(schema: Schema, doc: unknown): { errors: string[]; stats: Stats } {
  const errors: string[] = [];
  const stats: Stats = { rulesChecked: 0, rulesSkipped: [] };
  validate(schema, doc, '', errors, stats);
  return { errors, stats };
}

const root = (name: string, kind: string, pem: string): TrustRootData => ({ name, kind, digest: sha256(pem), bytes: Buffer.from(pem) });

describe('cluster resources', () => {
  const repos: PlannedRepository[] = [
    { source: 'registry.redhat.io/ubi9/ubi', destination: 'mirror.example.com:5000/mirror/ubi9/ubi', images: [{ source: 'registry.redhat.io/ubi9/ubi:9.4', digest: sha256('a'), tag: '9.4', destination: 'x' }], referrers: 1, cosignTags: [] },
    { source: 'quay.io/team/app', destination: 'mirror.example.com:5000/mirror/team/app', images: [{ source: 'quay.io/team/app@sha256:...', digest: sha256('b'), destination: 'y' }], referrers: 1, cosignTags: [] },
    { source: 'docker.io/library/busybox', destination: 'mirror.example.com:5000/mirror/library/busybox', images: [], referrers: 0, cosignTags: [] },
  ];
  const material = async (): Promise<{ policies: Policy[]; roots: TrustRootData[] }> => {
    const keys = await fixtureKeys();
    const redhatPem = await readFile(fileURLToPath(new URL('../trust/redhat-release3.pub', import.meta.url)), 'utf8');
    return {
      roots: [
        root('redhat', 'public-key', redhatPem),
        root('redhat-rekor', 'rekor-key', keys.ecdsa.publicKeyPem),
        root('team', 'public-key', keys.ed25519.publicKeyPem),
        root('team-rsa', 'public-key', keys.rsa.publicKeyPem),
      ],
      policies: [
        ...DEFAULT_POLICIES,
        { name: 'policy-1', scopes: ['quay.io/team'], roots: ['team'], require: 'signature', transparencyLog: false, origin: 'archive' },
        { name: 'policy-2', scopes: ['docker.io'], roots: [], require: 'none', transparencyLog: true, origin: 'archive' },
      ],
    };
  };

  describe('when generated from the default and a user policy', () => {
    it('validates every ClusterImagePolicy against the CRD schema', async () => {
      const schema = await crdSchema('0000_10_config-operator_01_clusterimagepolicies.crd.yaml');
      const { policies, roots } = await material();
      const out = clusterPolicies({ name: 'airlock-0123456789ab', policies, roots, repositories: repos });
      const cips = out.files.filter((f) => f.name.startsWith('clusterimagepolicy-'));
      expect(cips.map((f) => f.name).sort()).toEqual(['clusterimagepolicy-policy-1.yaml', 'clusterimagepolicy-redhat.yaml']);
      for (const f of cips) {
        const doc = parse(f.content) as { metadata: { name: string }; spec: { scopes: string[]; policy: { rootOfTrust: { publicKey: { keyData: string; rekorKeyData?: string } } } } };
        const { errors, stats } = check(schema, doc);
        expect(errors, f.name).toEqual([]);
        // keyData/rekorKeyData PEM rules, scope format rules, the policyType conditionals
        expect(stats.rulesChecked).toBeGreaterThanOrEqual(8);
        expect(stats.rulesSkipped).toEqual([]);
        expect(doc.metadata.name).not.toBe('openshift');
      }
      const rh = parse(cips.find((f) => f.name === 'clusterimagepolicy-redhat.yaml')!.content) as {
        spec: { scopes: string[]; policy: { rootOfTrust: { policyType: string; publicKey: { keyData: string; rekorKeyData?: string } }; signedIdentity: { matchPolicy: string } } };
      };
      expect(rh.spec.scopes).toEqual(['registry.redhat.io/ubi9/ubi']);
      expect(rh.spec.policy.rootOfTrust.policyType).toBe('PublicKey');
      expect(sha256(Buffer.from(rh.spec.policy.rootOfTrust.publicKey.keyData, 'base64'))).toBe(roots[0]!.digest);
      expect(Buffer.from(rh.spec.policy.rootOfTrust.publicKey.rekorKeyData!, 'base64').toString()).toBe(roots[1]!.bytes.toString());
      expect(rh.spec.policy.signedIdentity.matchPolicy).toBe('MatchRepoDigestOrExact');
      const team = parse(cips.find((f) => f.name === 'clusterimagepolicy-policy-1.yaml')!.content) as { spec: { scopes: string[]; policy: { rootOfTrust: { publicKey: Record<string, string> } } } };
      expect(team.spec.scopes).toEqual(['quay.io/team/app']);
      expect(Object.keys(team.spec.policy.rootOfTrust.publicKey)).toEqual(['keyData']);
    });

    it('validates the mirror sets against their CRD schemas', async () => {
      const idms = await crdSchema('0000_10_config-operator_01_imagedigestmirrorsets.crd.yaml');
      const itms = await crdSchema('0000_10_config-operator_01_imagetagmirrorsets.crd.yaml');
      const files = mirrorSets(repos, 'airlock-0123456789ab');
      for (const f of files) {
        const doc = parse(f.content) as { kind: string };
        const { errors } = check(doc.kind === 'ImageDigestMirrorSet' ? idms : itms, doc);
        expect(errors, f.name).toEqual([]);
      }
      expect(files.map((f) => f.name).sort()).toEqual(['imagedigestmirrorset.yaml', 'imagetagmirrorset.yaml']);
    });

    it('writes registries.d with use-sigstore-attachments for the mirror host, and a policy.json with its key files', async () => {
      const { policies, roots } = await material();
      const out = clusterPolicies({ name: 'airlock-0123456789ab', policies, roots, repositories: repos });
      const regd = parse(out.files.find((f) => f.name === 'registries.d/airlock-0123456789ab.yaml')!.content) as { docker: Record<string, Record<string, boolean>> };
      expect(regd.docker['mirror.example.com:5000']).toEqual({ 'use-sigstore-attachments': true });
      expect(regd.docker['registry.redhat.io/ubi9/ubi']).toEqual({ 'use-sigstore-attachments': true });
      const pj = JSON.parse(out.files.find((f) => f.name === 'policy.json')!.content) as {
        default: { type: string }[];
        transports: { docker: Record<string, Record<string, unknown>[]> };
      };
      expect(pj.default).toEqual([{ type: 'insecureAcceptAnything' }]);
      expect(pj.transports.docker['registry.redhat.io/ubi9/ubi']).toEqual([
        {
          type: 'sigstoreSigned',
          keyPath: '/etc/containers/airlock/keys/redhat.pub',
          rekorPublicKeyPath: '/etc/containers/airlock/keys/redhat-rekor.pub',
          signedIdentity: { type: 'matchRepoDigestOrExact' },
        },
      ]);
      expect(pj.transports.docker['mirror.example.com:5000/mirror/ubi9/ubi']![0]!.signedIdentity).toEqual({
        type: 'remapIdentity',
        prefix: 'mirror.example.com:5000/mirror/ubi9/ubi',
        signedPrefix: 'registry.redhat.io/ubi9/ubi',
      });
      expect(pj.transports.docker['quay.io/team/app']![0]).not.toHaveProperty('rekorPublicKeyPath');
      expect(pj.transports.docker['docker.io/library/busybox']).toBeUndefined();
      const keyFiles = out.files.filter((f) => f.name.startsWith('keys/')).map((f) => f.name).sort();
      expect(keyFiles).toEqual(['keys/redhat-rekor.pub', 'keys/redhat.pub', 'keys/team.pub']);
      expect(out.files.find((f) => f.name === 'keys/redhat.pub')!.content).toBe(roots[0]!.bytes.toString());
    });

    it('scopes an individual-image policy (repo:tag) to that image, and its mirror name to the same tag', async () => {
      const schema = await crdSchema('0000_10_config-operator_01_clusterimagepolicies.crd.yaml');
      const { roots } = await material();
      const policies: Policy[] = [{ name: 'pinned', scopes: ['docker.io/library/busybox:1.36'], roots: ['team'], require: 'signature', transparencyLog: false, origin: 'archive' }];
      const out = clusterPolicies({ name: 'airlock-0123456789ab', policies, roots, repositories: repos });
      const cip = parse(out.files.find((f) => f.name === 'clusterimagepolicy-pinned.yaml')!.content) as { spec: { scopes: string[] } };
      expect(cip.spec.scopes).toEqual(['docker.io/library/busybox:1.36']);
      expect(check(schema, cip).errors).toEqual([]);
      const pj = JSON.parse(out.files.find((f) => f.name === 'policy.json')!.content) as { transports: { docker: Record<string, { signedIdentity: unknown }[]> } };
      expect(Object.keys(pj.transports.docker).sort()).toEqual(['docker.io/library/busybox:1.36', 'mirror.example.com:5000/mirror/library/busybox:1.36']);
      expect(pj.transports.docker['mirror.example.com:5000/mirror/library/busybox:1.36']![0]!.signedIdentity).toEqual({
        type: 'remapIdentity',
        prefix: 'mirror.example.com:5000/mirror/library/busybox',
        signedPrefix: 'docker.io/library/busybox',
      });
    });

    it('never names a resource "openshift"', async () => {
      const { roots } = await material();
      const out = clusterPolicies({
        name: '',
        policies: [{ name: 'openshift', scopes: ['quay.io/team'], roots: ['team'], require: 'signature', transparencyLog: false, origin: 'file' }],
        roots,
        repositories: repos,
      });
      const doc = parse(out.files.find((f) => f.name.startsWith('clusterimagepolicy-'))!.content) as { metadata: { name: string } };
      expect(doc.metadata.name).toBe('airlock-openshift');
    });
  });

  describe('when a policy is keyless (a Sigstore trusted root and an identity)', () => {
    const keylessPolicy = (identity: Policy['identity']): Policy => ({
      name: 'keyless',
      scopes: ['quay.io/team'],
      roots: ['corp'],
      require: 'signature',
      transparencyLog: true,
      ...(identity ? { identity } : {}),
      origin: 'file',
    });

    it('writes a FulcioCAWithRekor ClusterImagePolicy that validates, and a policy.json fulcio requirement', async () => {
      const world = await startKeyless();
      try {
        const json = world.trustedRoot();
        const corp = root('corp', 'sigstore-trusted-root', JSON.stringify(json));
        const schema = await crdSchema('0000_10_config-operator_01_clusterimagepolicies.crd.yaml');
        const out = clusterPolicies({
          name: 'airlock-0123456789ab',
          policies: [keylessPolicy({ issuer: 'https://accounts.example.com', subject: 'builder@example.com' })],
          roots: [corp],
          repositories: repos,
        });
        expect(out.notes).toEqual([]);
        const f = out.files.find((x) => x.name === 'clusterimagepolicy-keyless.yaml')!;
        const doc = parse(f.content) as {
          spec: { scopes: string[]; policy: { rootOfTrust: { policyType: string; fulcioCAWithRekor: { fulcioCAData: string; rekorKeyData: string; fulcioSubject: { oidcIssuer: string; signedEmail: string } } } } };
        };
        const { errors, stats } = check(schema, doc);
        expect(errors).toEqual([]);
        // the PEM start/end rules of fulcioCAData and rekorKeyData, the email rule, the policyType conditionals
        expect(stats.rulesChecked).toBeGreaterThanOrEqual(8);
        // isURL is not evaluated by the checker: check the issuer here
        expect(stats.rulesSkipped).toEqual(['isURL(self)']);
        const r = doc.spec.policy.rootOfTrust;
        expect(new URL(r.fulcioCAWithRekor.fulcioSubject.oidcIssuer).href).toBe('https://accounts.example.com/');
        expect(r.policyType).toBe('FulcioCAWithRekor');
        expect(doc.spec.scopes).toEqual(['quay.io/team/app']);
        expect(r.fulcioCAWithRekor.fulcioSubject).toEqual({ oidcIssuer: 'https://accounts.example.com', signedEmail: 'builder@example.com' });
        expect(Buffer.from(r.fulcioCAWithRekor.fulcioCAData, 'base64').toString()).toBe(world.fulcio.rootPem);
        expect(Buffer.from(r.fulcioCAWithRekor.rekorKeyData, 'base64').toString()).toBe(world.rekor.publicKeyPem);
        const pj = JSON.parse(out.files.find((x) => x.name === 'policy.json')!.content) as { transports: { docker: Record<string, unknown[]> } };
        expect(pj.transports.docker['quay.io/team/app']).toEqual([
          {
            type: 'sigstoreSigned',
            fulcio: { caPath: '/etc/containers/airlock/keys/corp-fulcio.pem', oidcIssuer: 'https://accounts.example.com', subjectEmail: 'builder@example.com' },
            rekorPublicKeyPath: '/etc/containers/airlock/keys/corp-rekor.pub',
            signedIdentity: { type: 'matchRepoDigestOrExact' },
          },
        ]);
        expect(out.files.find((x) => x.name === 'keys/corp-fulcio.pem')!.content).toBe(world.fulcio.rootPem);
        expect(out.files.find((x) => x.name === 'keys/corp-rekor.pub')!.content).toBe(world.rekor.publicKeyPem);
      } finally {
        await world.stop();
      }
    });

    it('writes none, with a note, for a URI subject, a subjectRegExp or no identity', async () => {
      const world = await startKeyless();
      try {
        const corp = root('corp', 'sigstore-trusted-root', JSON.stringify(world.trustedRoot()));
        for (const [identity, why] of [
          [{ issuer: 'https://token.actions.example.com', subject: 'https://github.com/org/app/.github/workflows/r.yml@refs/heads/main' }, /only as an exact email/],
          [{ issuer: 'https://token.actions.example.com', subjectRegExp: '.*@example\\.com' }, /subjectRegExp .* cannot be expressed/],
          [undefined, /needs an identity/],
        ] as const) {
          const out = clusterPolicies({ name: 'airlock-0123456789ab', policies: [keylessPolicy(identity)], roots: [corp], repositories: repos });
          expect(out.files.filter((f) => f.name.startsWith('clusterimagepolicy-'))).toEqual([]);
          expect(out.notes.join()).toMatch(why);
        }
      } finally {
        await world.stop();
      }
    });
  });

  describe('when a resource is wrong', () => {
    it('the checker reports the schema violations (so a pass means something)', async () => {
      const schema = await crdSchema('0000_10_config-operator_01_clusterimagepolicies.crd.yaml');
      const bad = {
        apiVersion: 'config.openshift.io/v1',
        kind: 'ClusterImagePolicy',
        metadata: { name: 'x' },
        spec: {
          scopes: ['quay.io/team/app', 'quay.io/team/app', 'notadomain/app', 'quay.io/*'],
          policy: {
            rootOfTrust: { policyType: 'Bogus', publicKey: { keyData: Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'.padEnd(80, 'x')).toString('base64') } },
            signedIdentity: { matchPolicy: 'MatchRepoDigestOrExact', extra: 1 },
          },
        },
      };
      const { errors } = check(schema, bad);
      expect(errors).toEqual(
        expect.arrayContaining([
          '.spec.scopes: duplicate items in a set',
          ".spec.scopes[2]: invalid image scope format, scope must contain a fully qualified domain name or 'localhost'",
          expect.stringMatching(/^\.spec\.scopes\[3\]: invalid image scope with wildcard/),
          expect.stringMatching(/^\.spec\.policy\.rootOfTrust\.policyType: "Bogus" is not one of/),
          ".spec.policy.rootOfTrust.publicKey.keyData: the keyData must start with base64 encoding of '-----BEGIN PUBLIC KEY-----'.",
          '.spec.policy.signedIdentity.extra: unknown field',
          '.spec.policy.rootOfTrust: publicKey is required when policyType is PublicKey, and forbidden otherwise',
        ]),
      );
      const { errors: missing } = check(schema, { apiVersion: 'config.openshift.io/v1', kind: 'ClusterImagePolicy', metadata: {}, spec: { policy: {} } });
      expect(missing).toEqual(expect.arrayContaining(['.spec: missing required field scopes', '.spec.policy: missing required field rootOfTrust']));
    });
  });
});
