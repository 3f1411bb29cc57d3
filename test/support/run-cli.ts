import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the CLI in-process with captured streams, as a user would from a shell. */
export async function runCli(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {}): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on('data', (c: Buffer) => o.push(c));
  err.on('data', (c: Buffer) => e.push(c));
  const code = await main(argv, {
    stdout: out,
    stderr: err,
    env: opts.env ?? { ...process.env, SOURCE_DATE_EPOCH: '1700000000' },
    cwd: opts.cwd ?? process.cwd(),
    isTTY: false,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { code, stdout: Buffer.concat(o).toString(), stderr: Buffer.concat(e).toString() };
}
