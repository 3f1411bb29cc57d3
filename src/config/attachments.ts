import { AirlockError } from '../errors.js';
import type { Platform } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { didYouMean } from './yaml-node.js';

/**
 * Which attachments (referrers and cosign `.att`/`.sbom` artifacts that are not
 * signatures) go into an archive. Signatures are governed separately
 * (`signatures:` / `--no-signatures`).
 */
export interface AttachmentSelector {
  /** every attachment, whatever its type */
  readonly all: boolean;
  /** normalised media types, short names expanded; empty with `all` false = no attachments */
  readonly types: readonly string[];
  /** Does an attachment of this type (artifactType, layer media type, …) belong in the set? */
  matches(type: string): boolean;
  /** true when any of the types matches (an attachment classified under several types) */
  matchesAny(types: readonly string[]): boolean;
  /** `all`, `none`, or the comma-separated types: the form `--attachments` takes */
  toString(): string;
}

/**
 * Short names users may write instead of media types. Each expands to base types
 * that also match their structured-syntax suffixes and parameters (see typeMatches).
 */
export const ATTACHMENT_SHORT_NAMES: Readonly<Record<string, readonly string[]>> = {
  sbom: ['application/spdx', 'text/spdx', 'application/vnd.cyclonedx', 'application/vnd.syft'],
  spdx: ['application/spdx', 'text/spdx'],
  cyclonedx: ['application/vnd.cyclonedx'],
  syft: ['application/vnd.syft'],
  attestations: [MediaType.InToto, MediaType.DsseEnvelope],
  attestation: [MediaType.InToto, MediaType.DsseEnvelope],
  'in-toto': [MediaType.InToto, MediaType.DsseEnvelope],
  intoto: [MediaType.InToto, MediaType.DsseEnvelope],
};

/** Names that look like selectors but cannot be one; each with what to do instead. */
const REFUSED_NAMES: Readonly<Record<string, string>> = {
  signatures: 'signatures are not attachments: they are carried by default; turn them off with `signatures: false` or --no-signatures',
  signature: 'signatures are not attachments: they are carried by default; turn them off with `signatures: false` or --no-signatures',
  sig: 'signatures are not attachments: they are carried by default; turn them off with `signatures: false` or --no-signatures',
  provenance:
    'provenance is an in-toto attestation and cannot be told apart from other attestations by media type; use "attestations"',
  slsa: 'SLSA provenance is an in-toto attestation and cannot be told apart from other attestations by media type; use "attestations"',
};

const KEYWORDS = ['all', 'none'];

// RFC 6838 section 4.2: restricted-name = 1*127 restricted-name-chars, starting with a letter or digit.
const RESTRICTED_NAME = '[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}';
const MEDIA_TYPE_RE = new RegExp(`^(${RESTRICTED_NAME})/(${RESTRICTED_NAME})$`);

interface ParsedType {
  /** `type/subtype[+suffix]`, lower-cased (RFC 6838 section 4.2: names are case-insensitive) */
  base: string;
  /** parameter names lower-cased, values unquoted */
  params: Map<string, string>;
}

function parseType(input: string): ParsedType | undefined {
  const [head = '', ...rest] = input.split(';');
  const base = head.trim().toLowerCase();
  if (!MEDIA_TYPE_RE.test(base)) return undefined;
  const params = new Map<string, string>();
  for (const p of rest) {
    if (p.trim() === '') continue;
    const eq = p.indexOf('=');
    if (eq <= 0) return undefined;
    const name = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name === '') return undefined;
    params.set(name, value);
  }
  return { base, params };
}

function formatType(t: ParsedType): string {
  return [t.base, ...[...t.params].map(([k, v]) => `${k}=${v}`)].join(';');
}

/**
 * Does an attachment of type `candidate` fall under the selector type `wanted`?
 * The same type, or the same plus a structured-syntax suffix (RFC 6838 section 4.2.8:
 * `+json`, `+xml`), with any parameters; every parameter the selector names must be
 * present with the same value. `application/vnd.cyclonedx` matches
 * `application/vnd.cyclonedx+json; version=1.5` but not `application/vnd.cyclonedxfoo`.
 */
export function typeMatches(wanted: string, candidate: string): boolean {
  const w = parseType(wanted);
  const c = parseType(candidate);
  if (w === undefined || c === undefined) return false;
  return matchParsed(w, c);
}

function matchParsed(w: ParsedType, c: ParsedType): boolean {
  if (c.base !== w.base && !c.base.startsWith(`${w.base}+`)) return false;
  for (const [k, v] of w.params) if (c.params.get(k) !== v) return false;
  return true;
}

class Selector implements AttachmentSelector {
  readonly all: boolean;
  readonly types: readonly string[];
  readonly #parsed: readonly ParsedType[];

  constructor(all: boolean, parsed: ParsedType[]) {
    this.all = all;
    this.#parsed = all ? [] : parsed;
    this.types = Object.freeze(this.#parsed.map(formatType));
    Object.freeze(this);
  }

  matches(type: string): boolean {
    if (this.all) return true;
    const c = parseType(type);
    if (c === undefined) return false;
    return this.#parsed.some((w) => matchParsed(w, c));
  }

  matchesAny(types: readonly string[]): boolean {
    if (this.all) return true;
    return types.some((t) => this.matches(t));
  }

  toString(): string {
    if (this.all) return 'all';
    return this.types.length === 0 ? 'none' : this.types.join(',');
  }

  toJSON(): unknown {
    return this.all ? 'all' : [...this.types];
  }
}

/** The selector that selects nothing: the default, as attachments are opt-in. */
export const NO_ATTACHMENTS: AttachmentSelector = new Selector(false, []);
export const ALL_ATTACHMENTS: AttachmentSelector = new Selector(true, []);

/**
 * Parse `--attachments` or the `attachments:` field: a comma-separated string or a
 * list of media types, short names (see ATTACHMENT_SHORT_NAMES), `all` or `none`.
 * Undefined gives no attachments. Throws AirlockError('USAGE') naming the bad entry;
 * the config loader re-labels it with the file and line.
 */
export function parseAttachmentSelector(spec: string | readonly string[] | undefined): AttachmentSelector {
  if (spec === undefined) return NO_ATTACHMENTS;
  const items = (typeof spec === 'string' ? [spec] : spec).flatMap((s) => s.split(',')).map((s) => s.trim());
  const entries = items.filter((s) => s !== '');
  if (entries.length === 0) return NO_ATTACHMENTS;
  const parsed: ParsedType[] = [];
  let all = false;
  let none = false;
  for (const entry of entries) {
    const lower = entry.toLowerCase();
    if (lower === 'all') {
      all = true;
      continue;
    }
    if (lower === 'none') {
      none = true;
      continue;
    }
    const refused = REFUSED_NAMES[lower];
    if (refused !== undefined) throw new AirlockError('USAGE', `attachment type "${entry}": ${refused}`);
    if (!entry.includes('/')) {
      const expansion = ATTACHMENT_SHORT_NAMES[lower];
      if (expansion === undefined) {
        const names = [...Object.keys(ATTACHMENT_SHORT_NAMES), ...KEYWORDS];
        const hint = didYouMean(lower, names);
        throw new AirlockError(
          'USAGE',
          `attachment type "${entry}" is neither a media type (type/subtype) nor a short name` +
            `${hint !== undefined ? ` (did you mean "${hint}"?)` : ''}; short names: ${names.join(', ')}`,
        );
      }
      for (const t of expansion) parsed.push(parseType(t) as ParsedType);
      continue;
    }
    const t = parseType(entry);
    if (t === undefined) {
      throw new AirlockError(
        'USAGE',
        `attachment type "${entry}" is not a valid media type; write type/subtype[+suffix][;param=value], e.g. application/spdx+json`,
      );
    }
    parsed.push(t);
  }
  if (none && (all || parsed.length > 0)) {
    throw new AirlockError('USAGE', `attachment types "${entries.join(',')}": "none" cannot be combined with other types`);
  }
  if (all) {
    if (parsed.length > 0) {
      throw new AirlockError('USAGE', `attachment types "${entries.join(',')}": "all" already selects every type; list types or write all, not both`);
    }
    return ALL_ATTACHMENTS;
  }
  // De-duplicate while keeping the order the user wrote.
  const seen = new Set<string>();
  const unique = parsed.filter((t) => {
    const k = formatType(t);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return new Selector(false, unique);
}

// Platform strings follow the `os/arch[/variant]` form of docker, podman and skopeo
// (image-spec image-index.md, platform object).
const PLATFORM_PART = /^[a-z0-9][a-z0-9._-]*$/;
/** The spellings containerd normalises; users copy them from `uname -m`. */
const ARCH_ALIASES: Readonly<Record<string, string>> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64' };

/** `linux/amd64`, `linux/arm64/v8` → Platform. Throws AirlockError('USAGE') with what to write. */
export function parsePlatform(s: string): Platform {
  const input = s.trim();
  const parts = input.toLowerCase().split('/');
  const [os, arch, variant] = parts;
  const bad = (why: string): never => {
    throw new AirlockError('USAGE', `platform "${input}": ${why}; write os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`);
  };
  if (parts.length < 2 || parts.length > 3) bad('has the wrong number of parts');
  if (os === undefined || !PLATFORM_PART.test(os)) bad(`"${os ?? ''}" is not a valid os`);
  if (arch === undefined || !PLATFORM_PART.test(arch)) bad(`"${arch ?? ''}" is not a valid architecture`);
  if (variant !== undefined && !PLATFORM_PART.test(variant)) bad(`"${variant}" is not a valid variant`);
  const architecture = ARCH_ALIASES[arch as string] ?? (arch as string);
  return variant === undefined ? { os: os as string, architecture } : { os: os as string, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return p.variant === undefined ? `${p.os}/${p.architecture}` : `${p.os}/${p.architecture}/${p.variant}`;
}

/** containerd's default variants: an arm64 image without a variant is v8, an arm one v7. */
function effectiveVariant(p: Platform): string | undefined {
  if (p.variant !== undefined) return p.variant;
  if (p.architecture === 'arm64') return 'v8';
  if (p.architecture === 'arm') return 'v7';
  return undefined;
}

/**
 * Does an index entry's platform (`have`) satisfy a filter entry (`want`)? os and
 * architecture must be equal; a variant in the filter must be equal too (after
 * containerd's defaults), and a filter without a variant accepts any variant.
 */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  if (want.variant === undefined) return true;
  return effectiveVariant(want) === effectiveVariant(have);
}
