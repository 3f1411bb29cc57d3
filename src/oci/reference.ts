import { AirlockError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';

/**
 * An immutable, normalised image reference: `registry/repository[:tag][@digest]`.
 * Grammar: distribution/reference (the one docker, podman and skopeo share).
 */
export class Reference {
  /** registry host as written, with port when given: `quay.io`, `127.0.0.1:5000`, `docker.io` */
  readonly registry: string;
  /** repository path without the host: `library/ubuntu`, `openshift-release-dev/ocp-release` */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;

  private constructor(registry: string, repository: string, tag: string | undefined, digest: Digest | undefined) {
    this.registry = registry;
    this.repository = repository;
    this.tag = tag;
    this.digest = digest;
    Object.freeze(this);
  }

  static parse(input: string): Reference {
    const s = input.trim();
    const fail = (why: string): never => {
      throw new AirlockError('REFERENCE', `image reference "${s.slice(0, 200)}": ${why}`);
    };
    if (s === '') fail('is empty');
    if (s.length > 4096) fail('is too long');
    let rest = s;
    let digest: Digest | undefined;
    const at = rest.indexOf('@');
    if (at >= 0) {
      const d = rest.slice(at + 1);
      if (!isDigest(d)) fail(`"${d}" is not a valid sha256 or sha512 digest`);
      digest = d as Digest;
      rest = rest.slice(0, at);
    }
    let tag: string | undefined;
    const lastSlash = rest.lastIndexOf('/');
    const colon = rest.lastIndexOf(':');
    if (colon > lastSlash) {
      tag = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (!TAG_RE.test(tag)) fail(`tag "${tag}" is not valid (letters, digits, _ . -, at most 128, not starting with . or -)`);
    }
    let registry: string;
    let repository: string;
    const slash = rest.indexOf('/');
    const first = slash >= 0 ? rest.slice(0, slash) : '';
    if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
      registry = first;
      repository = rest.slice(slash + 1);
    } else {
      registry = 'docker.io';
      repository = rest;
    }
    if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = 'docker.io';
    if (!HOST_RE.test(registry)) fail(`registry "${registry}" is not a valid host[:port]`);
    // Check the path as written, so the message shows what the user typed, not the library/ form.
    if (!REPO_RE.test(repository)) {
      fail(`repository "${repository}" is not valid (lower-case path components of letters, digits and . _ -)`);
    }
    if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
    if (repository.length > 255) fail('repository name is longer than 255 characters');
    return new Reference(registry, repository, tag, digest);
  }

  /** Build from parts; validates like parse. */
  static of(registry: string, repository: string, opts: { tag?: string; digest?: Digest } = {}): Reference {
    let s = `${registry}/${repository}`;
    if (opts.tag !== undefined) s += `:${opts.tag}`;
    if (opts.digest !== undefined) s += `@${opts.digest}`;
    return Reference.parse(s);
  }

  /** `registry/repository`, the name a policy or mirror set scopes to. */
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  /** tag or digest for the `/manifests/<reference>` path; the digest wins when both are set. */
  get target(): string | undefined {
    return this.digest ?? this.tag;
  }

  withDigest(digest: Digest): Reference {
    return new Reference(this.registry, this.repository, this.tag, digest);
  }

  withTag(tag: string | undefined): Reference {
    return new Reference(this.registry, this.repository, tag, this.digest);
  }

  withoutTag(): Reference {
    return new Reference(this.registry, this.repository, undefined, this.digest);
  }

  withRepository(registry: string, repository: string): Reference {
    return Reference.of(registry, repository, {
      ...(this.tag !== undefined ? { tag: this.tag } : {}),
      ...(this.digest !== undefined ? { digest: this.digest } : {}),
    });
  }

  toString(): string {
    let s = this.name;
    if (this.tag !== undefined) s += `:${this.tag}`;
    if (this.digest !== undefined) s += `@${this.digest}`;
    return s;
  }

  equals(other: Reference): boolean {
    return this.toString() === other.toString();
  }
}

export const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPO_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$/;

export function isValidRepository(s: string): boolean {
  return REPO_RE.test(s) && s.length <= 255;
}

/** The host to talk to for a registry name (Docker Hub's API lives elsewhere). */
export function registryEndpointHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}
