/**
 * One error class for the whole tool. Callers branch on `code`, never on the
 * message; the message is the one line a user sees, and says what failed, on
 * which side, and what to do about it.
 */
export type ErrorCode =
  | 'USAGE' // bad flags or arguments
  | 'CONFIG' // the image-set file is wrong
  | 'REFERENCE' // an image reference cannot be parsed
  | 'DIGEST' // a digest string is malformed or unsupported
  | 'DIGEST_MISMATCH' // bytes did not hash to the digest they were fetched/pushed under
  | 'SIZE_MISMATCH' // a body was longer or shorter than its descriptor said
  | 'MANIFEST_INVALID' // a manifest is not JSON, too large, or of an unknown media type
  | 'NOT_FOUND' // the registry or archive has no such thing
  | 'UNAUTHORIZED' // 401 after the auth flow, or 403
  | 'REGISTRY' // any other registry-side failure (5xx after retries, protocol error)
  | 'NETWORK' // connection failure or timeout after retries
  | 'ARCHIVE' // the archive is malformed, hostile or inconsistent
  | 'VERIFY' // a signature or policy check failed
  | 'TRUST' // a trust root could not be obtained or is malformed
  | 'IO' // local file-system failure
  | 'ABORTED' // the operation was cancelled
  | 'INTERNAL';

export type Side = 'source' | 'destination' | 'archive' | 'local';

export interface AirlockErrorOptions {
  cause?: unknown;
  side?: Side;
  /** extra structured detail, printed under --verbose and included in --json reports */
  detail?: Record<string, unknown>;
}

export class AirlockError extends Error {
  override readonly name = 'AirlockError';
  readonly code: ErrorCode;
  readonly side: Side | undefined;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: AirlockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.side = options.side;
    this.detail = options.detail;
  }
}

export function isAirlockError(e: unknown, code?: ErrorCode): e is AirlockError {
  return e instanceof AirlockError && (code === undefined || e.code === code);
}

/** Exit codes documented in the README and `airlock --help`. */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  VERIFY: 3,
  ARCHIVE: 4,
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeFor(e: unknown): ExitCode {
  if (!(e instanceof AirlockError)) return ExitCode.FAILURE;
  switch (e.code) {
    case 'USAGE':
    case 'CONFIG':
    case 'REFERENCE':
      return ExitCode.USAGE;
    case 'VERIFY':
      return ExitCode.VERIFY;
    case 'ARCHIVE':
      return ExitCode.ARCHIVE;
    case 'ABORTED':
      return ExitCode.INTERRUPTED;
    default:
      return ExitCode.FAILURE;
  }
}

/** Describe any thrown value in one line. */
export function errorLine(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? String(e);
  return String(e);
}
