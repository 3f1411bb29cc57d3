import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { AirlockError, isAirlockError } from '../errors.js';
import type { Platform } from '../oci/manifest.js';
import { Reference } from '../oci/reference.js';
import {
  ALL_ATTACHMENTS,
  formatPlatform,
  NO_ATTACHMENTS,
  parseAttachmentSelector,
  parsePlatform,
  platformMatches,
  type AttachmentSelector,
} from './attachments.js';
import {
  DEFAULT_TRUST,
  isRegistryHost,
  parsePolicies,
  parseTrust,
  requireField,
  type FileCheck,
  type PolicyConfig,
  type SourcePos,
  type TrustConfig,
} from './trust-policy.js';
import { parseYaml, type YamlCursor } from './yaml-node.js';

export type { AttachmentSelector } from './attachments.js';
export type { PolicyConfig, TrustConfig } from './trust-policy.js';

export const IMAGESET_API_VERSION = 'airlock.dev/v1alpha1';
export const IMAGESET_KIND = 'ImageSet';
export const OC_MIRROR_API_VERSION = 'mirror.openshift.io/v2alpha1';
export const OC_MIRROR_KIND = 'ImageSetConfiguration';
/** A config file is a few kilobytes; anything this large is a mistake (or hostile). */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** The `registries:` key whose settings apply to every registry not listed. */
export const ANY_REGISTRY = '*';

export interface ImageSpec {
  readonly ref: Reference;
  /** only these platforms of a multi-platform image; absent = the set's filter */
  readonly platforms?: readonly Platform[];
  readonly source: SourcePos;
}

export interface RegistrySettings {
  readonly plainHTTP: boolean;
  /** absolute path of a PEM bundle of CAs to trust for this registry's TLS */
  readonly caFile?: string;
}

export interface ImageSet {
  readonly images: readonly ImageSpec[];
  /** oc-mirror blockedImages: a repository (any tag), or one tag or digest of it */
  readonly blocked: readonly Reference[];
  readonly signatures: boolean;
  readonly attachments: AttachmentSelector;
  /** global platform filter; empty = all platforms */
  readonly platforms: readonly Platform[];
  /** by registry host[:port]; `*` holds the settings for every other registry */
  readonly registries: ReadonlyMap<string, RegistrySettings>;
  readonly trust: TrustConfig;
  readonly policies: readonly PolicyConfig[];
  readonly origin: { readonly file?: string; readonly kind: 'ImageSet' | 'ImageSetConfiguration' | 'arguments' };
  /** things accepted but ignored (e.g. oc-mirror's archiveSize), for the CLI to print */
  readonly warnings: readonly string[];
  /** the set as plain data for the archive inventory (no credentials ever) */
  toJSON(): unknown;
}

/**
 * The pack flags that change the image set. Other pack flags (output, authfile,
 * concurrency, json) are not part of the set. Shaped like commander's output.
 */
export interface PackFlags {
  /** `false` when --no-signatures was given; `true` (commander's default for a negatable flag) does not override the file */
  signatures?: boolean | undefined;
  /** --attachments, as given (comma-separated) */
  attachments?: string | readonly string[] | undefined;
  /** --platform, repeatable */
  platform?: readonly string[] | string | undefined;
  /** --plain-http: every registry over plain HTTP */
  plainHttp?: boolean | undefined;
}

// ---------------------------------------------------------------------------
// Loading

/** Read, parse and validate an ImageSet or oc-mirror ImageSetConfiguration file. */
export async function loadImageSet(file: string): Promise<ImageSet> {
  let text: string;
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) throw new AirlockError('CONFIG', `${file}: is not a regular file; give the path of a YAML image-set file`);
    if (st.size > MAX_CONFIG_BYTES) {
      throw new AirlockError('CONFIG', `${file}: is ${st.size} bytes, larger than the ${MAX_CONFIG_BYTES}-byte limit for a config file`);
    }
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if (isAirlockError(e)) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new AirlockError(
      'CONFIG',
      `${file}: cannot read the config file (${code ?? (e as Error).message})${code === 'ENOENT' ? '; check the path given to --config' : ''}`,
      { cause: e, side: 'local' },
    );
  }
  const files: FileCheck[] = [];
  const set = parseImageSet(text, file, files);
  // Local files the config points to must exist now, not halfway through a long pack.
  for (const f of files) {
    try {
      const st = await fs.stat(f.path);
      if (!st.isFile()) f.at.fail(`${f.path} is not a regular file`);
    } catch (e) {
      if (isAirlockError(e)) throw e;
      f.at.fail(`cannot read ${f.path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); relative paths are resolved against the config file's directory`);
    }
  }
  return set;
}

/**
 * Parse config text. `file` names the source in errors and resolves relative paths;
 * `files` collects the local paths the caller should check exist (loadImageSet does).
 */
export function parseImageSet(text: string, file: string, files: FileCheck[] = []): ImageSet {
  const root = parseYaml(text, file);
  if (!root.present) root.fail('the file is empty; it needs apiVersion, kind and images', null, '');
  // Read kind first, so unknown-field errors list the fields of this kind only.
  const kindC = root.peek('kind');
  const kind = kindC?.present === true ? kindC.str() : undefined;
  const fields = kind === OC_MIRROR_KIND ? OC_MIRROR_FIELDS : AIRLOCK_FIELDS;
  const other = kind === OC_MIRROR_KIND ? AIRLOCK_FIELDS : OC_MIRROR_FIELDS;
  const top = root.map(fields, 'a mapping (apiVersion, kind, …)', other);
  const apiVersion = requireField(root, top, 'apiVersion').str();
  requireField(root, top, 'kind');
  const accepted = `${IMAGESET_API_VERSION} ${IMAGESET_KIND}, or ${OC_MIRROR_API_VERSION} ${OC_MIRROR_KIND}`;
  if (kind === IMAGESET_KIND) {
    if (apiVersion !== IMAGESET_API_VERSION) {
      (top.get('apiVersion') as YamlCursor).fail(`"${apiVersion}" is not supported for kind ${kind}; accepted: ${accepted}`);
    }
    return parseAirlock(root, top, file, files);
  }
  if (kind === OC_MIRROR_KIND) {
    if (apiVersion !== OC_MIRROR_API_VERSION) {
      (top.get('apiVersion') as YamlCursor).fail(`"${apiVersion}" is not supported for kind ${kind}; accepted: ${accepted}`);
    }
    return parseOcMirror(root, top, file);
  }
  return (kindC as YamlCursor).fail(`"${kind ?? ''}" is not supported; accepted: ${accepted}`);
}

const AIRLOCK_FIELDS = ['apiVersion', 'kind', 'images', 'signatures', 'attachments', 'platforms', 'registries', 'trust', 'policies'];
const OC_MIRROR_FIELDS = ['apiVersion', 'kind', 'mirror', 'archiveSize'];

function refuseKeys(top: Map<string, YamlCursor>, keys: readonly string[], why: string): void {
  for (const k of keys) {
    const c = top.get(k);
    if (c !== undefined) c.fail(`is not a field of this kind (${why})`);
  }
}

function parseAirlock(root: YamlCursor, top: Map<string, YamlCursor>, file: string, files: FileCheck[]): ImageSet {
  refuseKeys(top, ['mirror', 'archiveSize'], `it belongs to oc-mirror's ${OC_MIRROR_KIND}`);
  const baseDir = path.dirname(path.resolve(file));
  // `images` may be left out: a file of settings only, with the images given as arguments
  // (imageSetFromArgs refuses a set that ends up empty).
  const imagesC = top.get('images');
  const images: ImageSpec[] = [];
  for (const item of imagesC?.present === true ? imagesC.seq('a list of image references') : []) {
    const im = parseImageEntry(item);
    // Two entries for one image would leave its platform filter ambiguous.
    const twin = images.find((other) => other.ref.equals(im.ref));
    if (twin !== undefined) item.fail(`${im.ref.toString()} is already listed at line ${twin.source.line ?? '?'}; list each image once`);
    images.push(im);
  }
  if (imagesC?.present === true && images.length === 0) imagesC.fail('must list at least one image (or leave the field out and give images as arguments)');
  const sig = top.get('signatures');
  const att = top.get('attachments');
  const plat = top.get('platforms');
  const reg = top.get('registries');
  const trustC = top.get('trust');
  const polC = top.get('policies');
  const trust = trustC?.present === true ? parseTrust(trustC, baseDir, files) : DEFAULT_TRUST;
  return makeImageSet({
    images,
    blocked: [],
    signatures: sig?.present === true ? sig.bool() : true,
    attachments: att?.present === true ? parseAttachmentsField(att) : NO_ATTACHMENTS,
    platforms: plat?.present === true ? parsePlatformList(plat) : [],
    registries: reg?.present === true ? parseRegistries(reg, baseDir, files) : new Map(),
    trust,
    policies: polC?.present === true ? parsePolicies(polC, trust) : [],
    origin: { file, kind: 'ImageSet' },
    warnings: [],
  });
}

function parseImageEntry(item: YamlCursor): ImageSpec {
  if (item.isString()) {
    return { ref: parseRefField(item, true), source: { file: item.file, line: item.line } };
  }
  const m = item.map(['ref', 'platforms'], 'an image reference, or a mapping {ref, platforms}');
  const ref = parseRefField(requireField(item, m, 'ref'), true);
  const p = m.get('platforms');
  const platforms = p?.present === true ? parsePlatformList(p) : undefined;
  if (platforms !== undefined && platforms.length === 0) (p as YamlCursor).fail('must list at least one platform, or be left out for all');
  return platforms === undefined
    ? { ref, source: { file: item.file, line: item.line } }
    : { ref, platforms, source: { file: item.file, line: item.line } };
}

/**
 * An image reference field. Images without tag or digest mean `:latest`, as in
 * docker and podman; blocked entries keep the bare repository (it blocks every tag).
 */
function parseRefField(c: YamlCursor, defaultLatest: boolean): Reference {
  const s = c.str('an image reference');
  let ref: Reference;
  try {
    ref = Reference.parse(s);
  } catch (e) {
    const why = (e as Error).message.replace(/^image reference "[^"]*": /, '');
    // oc-mirror accepts regular expressions in blockedImages; airlock matches references only.
    const pattern = !defaultLatest && /[*^$()[\]|\\?]/.test(s) ? '; patterns are not supported here, list a repository, tag or digest' : '';
    return c.fail(`"${s}" is not a valid image reference (${why})${pattern}; write registry/repository[:tag][@digest]`);
  }
  if (defaultLatest && ref.tag === undefined && ref.digest === undefined) ref = ref.withTag('latest');
  return ref;
}

function parseAttachmentsField(c: YamlCursor): AttachmentSelector {
  try {
    if (c.isSeq()) return parseAttachmentSelector(c.seq().map((i) => i.str('a media type or short name')));
    return parseAttachmentSelector(c.str('all, or a list of media types or short names'));
  } catch (e) {
    if (isAirlockError(e, 'USAGE')) c.fail(e.message);
    throw e;
  }
}

function parsePlatformList(c: YamlCursor): Platform[] {
  const out: Platform[] = [];
  for (const item of c.seq('a list of os/arch[/variant]')) {
    const s = item.str('os/arch[/variant]');
    try {
      const p = parsePlatform(s);
      if (!out.some((q) => formatPlatform(q) === formatPlatform(p))) out.push(p);
    } catch (e) {
      if (isAirlockError(e, 'USAGE')) item.fail(e.message);
      throw e;
    }
  }
  return out;
}

function parseRegistries(c: YamlCursor, baseDir: string, files: FileCheck[]): Map<string, RegistrySettings> {
  const out = new Map<string, RegistrySettings>();
  for (const [host, v] of c.entries('registry hosts')) {
    if (host !== ANY_REGISTRY && !isRegistryHost(host)) {
      v.fail(`"${host}" is not a registry host[:port] (it needs a dot, a port, or to be localhost; "${ANY_REGISTRY}" means every other registry)`);
    }
    const key = host.toLowerCase();
    if (out.has(key)) v.fail(`"${host}" is listed twice`);
    const m = v.map(['plainHTTP', 'caFile'], 'a mapping {plainHTTP, caFile}');
    const plain = m.get('plainHTTP');
    const ca = m.get('caFile');
    const plainHTTP = plain?.present === true ? plain.bool() : false;
    if (ca?.present === true) {
      const p = ca.str('a file path');
      if (p.trim() === '') ca.fail('must not be empty');
      if (plainHTTP) ca.fail('has no effect with plainHTTP: true (no TLS); remove one of them');
      const abs = path.resolve(baseDir, p);
      files.push({ path: abs, at: ca });
      out.set(key, { plainHTTP, caFile: abs });
    } else {
      out.set(key, { plainHTTP });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// oc-mirror ImageSetConfiguration (mirror.openshift.io/v2alpha1)

/** oc-mirror sections airlock does not implement: each is refused by name, never silently dropped. */
const OC_MIRROR_REFUSED: Readonly<Record<string, string>> = {
  platform: 'OpenShift release payloads (mirror.platform) are not supported by airlock; list the release image by digest under additionalImages, or use oc-mirror for releases',
  operators: 'operator catalogs (mirror.operators) are not supported by airlock; list the catalog and bundle images under additionalImages, or use oc-mirror for operators',
  helm: 'Helm charts (mirror.helm) are not supported by airlock; list the charts\' images under additionalImages',
  samples: 'sample images (mirror.samples) are not supported (oc-mirror does not implement them either); list the images under additionalImages',
};

function parseOcMirror(root: YamlCursor, top: Map<string, YamlCursor>, file: string): ImageSet {
  refuseKeys(
    top,
    ['images', 'signatures', 'attachments', 'platforms', 'registries', 'trust', 'policies'],
    `it belongs to airlock's ${IMAGESET_KIND} (${IMAGESET_API_VERSION}); use that kind, or the pack flags`,
  );
  const warnings: string[] = [];
  const archive = top.get('archiveSize');
  if (archive !== undefined) {
    warnings.push(`${file}:${archive.line}: archiveSize is ignored: airlock writes one archive file`);
  }
  const mirrorC = requireField(root, top, 'mirror');
  const m = mirrorC.map(['additionalImages', 'blockedImages', ...Object.keys(OC_MIRROR_REFUSED)], 'a mapping');
  for (const [k, why] of Object.entries(OC_MIRROR_REFUSED)) {
    const c = m.get(k);
    if (c !== undefined) c.fail(why);
  }
  const addC = m.get('additionalImages');
  const images: ImageSpec[] = [];
  for (const item of addC?.present === true ? addC.seq('a list of {name: IMAGE}') : []) {
    const im = item.map(['name'], 'a mapping {name: IMAGE}');
    const ref = parseRefField(requireField(item, im, 'name'), true);
    // oc-mirror tolerates repeats; so do we, but say so.
    const twin = images.find((other) => other.ref.equals(ref));
    if (twin !== undefined) {
      warnings.push(`${file}:${item.line}: ${ref.toString()} is listed again (first at line ${twin.source.line ?? '?'}); packed once`);
      continue;
    }
    images.push({ ref, source: { file: item.file, line: item.line } });
  }
  if (images.length === 0) {
    (addC ?? mirrorC).fail('lists no images; airlock mirrors mirror.additionalImages only', null, 'mirror.additionalImages');
  }
  const blockC = m.get('blockedImages');
  const blocked =
    blockC?.present === true
      ? blockC.seq('a list of {name: IMAGE}').map((item) => {
          const im = item.map(['name'], 'a mapping {name: IMAGE}');
          return parseRefField(requireField(item, im, 'name'), false);
        })
      : [];
  return makeImageSet({
    images,
    blocked,
    signatures: true,
    attachments: NO_ATTACHMENTS,
    platforms: [],
    registries: new Map(),
    trust: DEFAULT_TRUST,
    policies: [],
    origin: { file, kind: 'ImageSetConfiguration' },
    warnings,
  });
}

// ---------------------------------------------------------------------------
// Flags

/**
 * The set to pack: the references given on the command line added to the file's
 * images (if any), with the flags overriding the file's settings. Precedence:
 * flags > file > defaults.
 */
export function imageSetFromArgs(refs: readonly string[], overrides: PackFlags, base?: ImageSet): ImageSet {
  const images: ImageSpec[] = [...(base?.images ?? [])];
  refs.forEach((s, i) => {
    let ref: Reference;
    try {
      ref = Reference.parse(s);
    } catch (e) {
      const why = (e as Error).message.replace(/^image reference "[^"]*": /, '');
      throw new AirlockError('USAGE', `image argument ${i + 1}: "${s}" is not a valid image reference (${why}); write registry/repository[:tag][@digest]`, {
        cause: e,
      });
    }
    if (ref.tag === undefined && ref.digest === undefined) ref = ref.withTag('latest');
    if (!images.some((im) => im.ref.equals(ref))) images.push({ ref, source: {} });
  });
  if (images.length === 0) {
    throw new AirlockError('USAGE', 'nothing to pack: give one or more image references, or --config FILE');
  }

  const flagPlatforms = overrides.platform === undefined ? [] : typeof overrides.platform === 'string' ? [overrides.platform] : [...overrides.platform];
  let platforms: readonly Platform[] = base?.platforms ?? [];
  let finalImages: ImageSpec[] = images;
  if (flagPlatforms.length > 0) {
    const parsed: Platform[] = [];
    for (const s of flagPlatforms.flatMap((p) => p.split(','))) {
      if (s.trim() === '') continue;
      const p = parsePlatform(s);
      if (!parsed.some((q) => formatPlatform(q) === formatPlatform(p))) parsed.push(p);
    }
    platforms = parsed;
    // --platform wins over every platform list in the file, per image too.
    finalImages = images.map((im) => ({ ref: im.ref, source: im.source }));
  }

  let registries: ReadonlyMap<string, RegistrySettings> = base?.registries ?? new Map();
  if (overrides.plainHttp === true) {
    const m = new Map<string, RegistrySettings>();
    for (const [host] of registries) m.set(host, { plainHTTP: true });
    m.set(ANY_REGISTRY, { plainHTTP: true });
    registries = m;
  }

  return makeImageSet({
    images: finalImages,
    blocked: base?.blocked ?? [],
    signatures: overrides.signatures === false ? false : (base?.signatures ?? true),
    attachments: overrides.attachments !== undefined ? parseAttachmentSelector(overrides.attachments) : (base?.attachments ?? NO_ATTACHMENTS),
    platforms,
    registries,
    trust: base?.trust ?? DEFAULT_TRUST,
    policies: base?.policies ?? [],
    origin: base?.origin ?? { kind: 'arguments' },
    warnings: base?.warnings ?? [],
  });
}

// ---------------------------------------------------------------------------
// Queries the pack command uses

/** Settings for a registry: its own entry, else the `*` entry, else HTTPS with system CAs. */
export function registrySettingsFor(set: ImageSet, registry: string): RegistrySettings {
  return set.registries.get(registry.toLowerCase()) ?? set.registries.get(ANY_REGISTRY) ?? { plainHTTP: false };
}

/**
 * Is a reference blocked? A blocked entry without tag or digest blocks the whole
 * repository; with a tag, that tag; with a digest, that digest.
 */
export function isBlocked(set: ImageSet, ref: Reference): boolean {
  return set.blocked.some((b) => {
    if (b.name !== ref.name) return false;
    if (b.digest !== undefined) return ref.digest === b.digest;
    if (b.tag !== undefined) return ref.tag === b.tag;
    return true;
  });
}

/** The platform filter for one image: its own list, else the set's; empty = all. */
export function platformsFor(set: ImageSet, image: ImageSpec): readonly Platform[] {
  return image.platforms ?? set.platforms;
}

/** Does a platform of an index entry pass the filter for this image? */
export function wantsPlatform(set: ImageSet, image: ImageSpec, platform: Platform | undefined): boolean {
  const filter = platformsFor(set, image);
  if (filter.length === 0) return true;
  // Entries without a platform (attestation manifests in buildkit indexes) are not images to filter.
  if (platform === undefined) return true;
  return filter.some((want) => platformMatches(want, platform));
}

// ---------------------------------------------------------------------------

interface ImageSetData {
  images: readonly ImageSpec[];
  blocked: readonly Reference[];
  signatures: boolean;
  attachments: AttachmentSelector;
  platforms: readonly Platform[];
  registries: ReadonlyMap<string, RegistrySettings>;
  trust: TrustConfig;
  policies: readonly PolicyConfig[];
  origin: ImageSet['origin'];
  warnings: readonly string[];
}

function makeImageSet(d: ImageSetData): ImageSet {
  const set: ImageSet = {
    images: Object.freeze([...d.images]),
    blocked: Object.freeze([...d.blocked]),
    signatures: d.signatures,
    attachments: d.attachments,
    platforms: Object.freeze([...d.platforms]),
    registries: d.registries,
    trust: d.trust,
    policies: Object.freeze([...d.policies]),
    origin: d.origin,
    warnings: Object.freeze([...d.warnings]),
    toJSON: () => imageSetToJSON(set),
  };
  return Object.freeze(set);
}

/**
 * Plain data for the archive inventory. It holds names, types and local paths of
 * trust material, never credentials: auth lives in the authfile, which is not part
 * of the set.
 */
function imageSetToJSON(s: ImageSet): unknown {
  return {
    apiVersion: IMAGESET_API_VERSION,
    kind: IMAGESET_KIND,
    origin: { kind: s.origin.kind, ...(s.origin.file !== undefined ? { file: path.basename(s.origin.file) } : {}) },
    images: s.images.map((im) =>
      im.platforms === undefined ? { ref: im.ref.toString() } : { ref: im.ref.toString(), platforms: im.platforms.map(formatPlatform) },
    ),
    blocked: s.blocked.map((b) => b.toString()),
    signatures: s.signatures,
    attachments: s.attachments.all ? 'all' : [...s.attachments.types],
    platforms: s.platforms.map(formatPlatform),
    registries: Object.fromEntries(
      [...s.registries].map(([h, r]) => [h, r.caFile === undefined ? { plainHTTP: r.plainHTTP } : { plainHTTP: r.plainHTTP, caFile: path.basename(r.caFile) }]),
    ),
    trust: {
      redhat: s.trust.redhat,
      rekorKeyUrl: s.trust.rekorKeyUrl,
      keys: s.trust.keys.map((k) => ({ name: k.name, path: path.basename(k.path) })),
      trustedRoots: s.trust.trustedRoots.map((k) => ({ name: k.name, path: path.basename(k.path) })),
      sigstorePublicGood: s.trust.sigstorePublicGood,
    },
    policies: s.policies.map((p) => ({ scopes: [...p.scopes], roots: [...p.roots], require: p.require, transparencyLog: p.transparencyLog, ...(p.identity ? { identity: { ...p.identity } } : {}) })),
  };
}

export { ALL_ATTACHMENTS, NO_ATTACHMENTS };
