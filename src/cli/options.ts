import { AirlockError } from '../errors.js';

export function parseConcurrency(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new AirlockError('USAGE', `--concurrency ${s}: expected a whole number from 1 to 256`);
  }
  return n;
}

export function parseRetries(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 100) {
    throw new AirlockError('USAGE', `--retries ${s}: expected a whole number from 0 to 100`);
  }
  return n;
}

/** `--timeout <seconds>`: how long a connection, a response's headers, or a silent body may take. */
export function parseTimeout(s: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) {
    throw new AirlockError('USAGE', `--timeout ${s}: expected a number of seconds greater than 0 (fractions allowed)`);
  }
  return Math.round(n * 1000);
}
