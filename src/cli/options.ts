import { AirlockError } from '../errors.js';

export function parseConcurrency(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new AirlockError('USAGE', `--concurrency ${s}: expected a whole number from 1 to 256`);
  }
  return n;
}
