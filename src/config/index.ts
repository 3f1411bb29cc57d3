export * from './attachments.js';
export * from './image-set.js';
export {
  DEFAULT_TRUST,
  REDHAT_REKOR_KEY_URL,
  ROOT_REDHAT,
  ROOT_SIGSTORE_PUBLIC_GOOD,
  rootNames,
  scopeProblem,
  type NamedFile,
  type PolicyRequirement,
  type SourcePos,
} from './trust-policy.js';
