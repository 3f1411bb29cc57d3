/**
 * airlock's own annotations on index.json entries. They are hints for readers;
 * the inventory is the authority. docs/archive-format.md lists them.
 */
export const AirlockAnnotation = {
  /** image | referrer | cosign-tag | inventory */
  Kind: 'dev.airlock.kind',
  /** for referrers and cosign tags: the digest of the manifest they refer to */
  Subject: 'dev.airlock.subject',
  /** `registry/repository` the entry was read from */
  Repository: 'dev.airlock.repository',
  /** for images: the reference pinned to its digest (`registry/repo:tag@sha256:…`) */
  Source: 'dev.airlock.source',
  /** for cosign tags: the tag, e.g. `sha256-<hex>.sig` */
  Tag: 'dev.airlock.tag',
} as const;

export type EntryKind = 'image' | 'referrer' | 'cosign-tag' | 'inventory';
