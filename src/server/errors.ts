import { AirlockError, type ErrorCode } from '../errors.js';

/**
 * The error codes of distribution-spec spec.md "Error Codes", with the HTTP status
 * each is answered with. MANIFEST_BLOB_UNKNOWN is 400 as in the reference
 * implementation (Distribution), which clients already handle.
 */
export const DISTRIBUTION_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
} as const;

export type DistributionCode = keyof typeof DISTRIBUTION_STATUS;

const AIRLOCK_CODE: Record<DistributionCode, ErrorCode> = {
  BLOB_UNKNOWN: 'NOT_FOUND',
  BLOB_UPLOAD_INVALID: 'REGISTRY',
  BLOB_UPLOAD_UNKNOWN: 'NOT_FOUND',
  DIGEST_INVALID: 'DIGEST_MISMATCH',
  MANIFEST_BLOB_UNKNOWN: 'MANIFEST_INVALID',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
  MANIFEST_UNKNOWN: 'NOT_FOUND',
  NAME_INVALID: 'USAGE',
  NAME_UNKNOWN: 'NOT_FOUND',
  SIZE_INVALID: 'SIZE_MISMATCH',
  UNAUTHORIZED: 'UNAUTHORIZED',
  DENIED: 'UNAUTHORIZED',
  UNSUPPORTED: 'REGISTRY',
  TOOMANYREQUESTS: 'REGISTRY',
};

/**
 * A failure the server reports to its client with one of the spec's codes. It is an
 * AirlockError (one error base class), whose `code` is the closest airlock code.
 */
export class DistributionError extends AirlockError {
  readonly specCode: DistributionCode;
  readonly status: number;
  readonly specDetail: unknown;

  constructor(specCode: DistributionCode, message: string, options: { status?: number; detail?: unknown; cause?: unknown } = {}) {
    super(AIRLOCK_CODE[specCode], message, options.cause === undefined ? {} : { cause: options.cause });
    this.specCode = specCode;
    this.status = options.status ?? DISTRIBUTION_STATUS[specCode];
    this.specDetail = options.detail;
  }

  /** The body of distribution-spec "Error Codes": `{"errors":[{code,message,detail}]}`. */
  toJSON(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    return {
      errors: [{ code: this.specCode, message: this.message, ...(this.specDetail !== undefined ? { detail: this.specDetail } : {}) }],
    };
  }
}

export function isDistributionError(e: unknown): e is DistributionError {
  return e instanceof DistributionError;
}
