import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/manifest.js';

/**
 * Small storage interfaces, composed into bigger ones (the oras-go model).
 * The graph walk and the verifier only see these; they never see HTTP or tar.
 */
export interface OpOptions {
  signal?: AbortSignal;
}

export interface Fetcher {
  /**
   * A stream of the content. Implementations verify size and digest against
   * `desc`: the stream errors instead of ending cleanly when they differ.
   */
  fetch(desc: Descriptor, options?: OpOptions): Promise<Readable>;
}

export interface Exister {
  exists(desc: Descriptor, options?: OpOptions): Promise<boolean>;
}

export interface Pusher {
  /**
   * Store content under `desc`. Manifests (by media type) are stored as manifests.
   * Implementations verify size and digest before the content becomes visible.
   */
  push(desc: Descriptor, content: Readable | Uint8Array, options?: OpOptions): Promise<void>;
}

export interface Resolver {
  /** Resolve a tag or digest to the descriptor of its manifest. */
  resolve(reference: string, options?: OpOptions): Promise<Descriptor>;
}

export interface Tagger {
  /** Point `tag` at the manifest `desc` (which must already be stored), given its exact bytes. */
  tag(desc: Descriptor, bytes: Uint8Array, tag: string, options?: OpOptions): Promise<void>;
}

export interface TagLister {
  tags(options?: OpOptions & { last?: string; n?: number }): AsyncIterable<string>;
}

export interface ReferrersOptions extends OpOptions {
  artifactType?: string;
}

export interface ReferrerLister {
  /**
   * Descriptors of the manifests whose `subject` is `subject`. Filters are always
   * re-applied by the implementation, whatever the server claims.
   */
  referrers(subject: Descriptor, options?: ReferrersOptions): Promise<Descriptor[]>;
}

export type ReadOnlyStorage = Fetcher & Exister;
export type Storage = ReadOnlyStorage & Pusher;
export type ReadOnlyTarget = ReadOnlyStorage & Resolver;
export type Target = Storage & Resolver & Tagger;

export function isReferrerLister(x: unknown): x is ReferrerLister {
  return typeof (x as ReferrerLister | undefined)?.referrers === 'function';
}

export function isTagLister(x: unknown): x is TagLister {
  return typeof (x as TagLister | undefined)?.tags === 'function';
}

export function isTagger(x: unknown): x is Tagger {
  return typeof (x as Tagger | undefined)?.tag === 'function';
}
