import { AirlockError } from '../errors.js';

/**
 * The resource bounds of `airlock serve`, with the defaults a small site can run with
 * (docs/serve.md "Limits"). Every one has a flag.
 */
export interface ServerLimits {
  /** the largest blob one upload may grow to (`--max-blob-size`) */
  readonly maxBlobBytes: number;
  /** upload sessions open at once (`--max-uploads`) */
  readonly maxUploads: number;
  /** a session without a chunk for this long is removed (`--upload-max-age`) */
  readonly uploadMaxAgeMs: number;
  /** how often stale sessions are looked for; also at start */
  readonly uploadSweepIntervalMs: number;
  /**
   * A request body must bring at least `minBodyRate` bytes per second over every window
   * of this length, or its connection is closed (`--body-timeout`). Also how long a
   * client may leave a response unread.
   */
  readonly bodyTimeoutMs: number;
  /** bytes per second a request body must average over each body-timeout window (`--min-body-rate`) */
  readonly minBodyRate: number;
  /** a connection with no request in progress, or with request headers unfinished, is closed after this (`--idle-timeout`) */
  readonly idleTimeoutMs: number;
}

const GiB = 1024 * 1024 * 1024;

export const DEFAULT_LIMITS: ServerLimits = {
  maxBlobBytes: 32 * GiB,
  maxUploads: 256,
  uploadMaxAgeMs: 24 * 60 * 60 * 1000,
  uploadSweepIntervalMs: 10 * 60 * 1000,
  bodyTimeoutMs: 60_000,
  minBodyRate: 1024,
  idleTimeoutMs: 30_000,
};

/** Fill in defaults once, and refuse values that would disable a bound by accident. */
export function resolveLimits(given: Partial<ServerLimits> = {}): ServerLimits {
  const l = { ...DEFAULT_LIMITS, ...definedOnly(given) };
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isFinite(v) || v < 0 || (k !== 'minBodyRate' && v === 0)) {
      throw new AirlockError('USAGE', `serve limit ${k} must be a positive number, not ${String(v)}`);
    }
  }
  // look for stale sessions at least twice per age, so none outlives it by much
  return { ...l, uploadSweepIntervalMs: Math.max(10, Math.min(l.uploadSweepIntervalMs, Math.ceil(l.uploadMaxAgeMs / 2))) };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `24h`, `7d`, `500ms` (a bare number is seconds) → milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2] ?? 's']! : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new AirlockError('USAGE', `${flag} "${value}" is not a duration; write it like 30s, 15m, 24h or 7d`);
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: GiB, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** `512MiB`, `32GiB`, `1.5GB`, `1024` → bytes. */
export function parseSize(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new AirlockError('USAGE', `${flag} "${value}" is not a size; write it like 1024, 512MiB or 32GiB`);
  return n;
}

/** A positive whole number flag. */
export function parseCount(flag: string, value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new AirlockError('USAGE', `${flag} "${value}" is not a positive whole number`);
  return n;
}
