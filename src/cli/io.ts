import type { Writable } from 'node:stream';

/** Where a command writes: data to stdout, progress and logs to stderr. Tests pass their own. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** true when stderr is a terminal, so a live progress display may be drawn */
  isTTY: boolean;
  /** aborted on SIGINT/SIGTERM by the bin; commands stop cleanly */
  signal?: AbortSignal;
}

export function processIO(signal?: AbortSignal): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    isTTY: Boolean(process.stderr.isTTY),
    ...(signal ? { signal } : {}),
  };
}

/** A logger writing plain lines to stderr; `debug` only under --verbose. */
export class Logger {
  readonly #io: CliIO;
  readonly verbose: boolean;
  readonly quiet: boolean;

  constructor(io: CliIO, opts: { verbose?: boolean; quiet?: boolean } = {}) {
    this.#io = io;
    this.verbose = opts.verbose ?? false;
    this.quiet = opts.quiet ?? false;
  }

  info(line: string): void {
    if (!this.quiet) this.#io.stderr.write(`${line}\n`);
  }

  warn(line: string): void {
    this.#io.stderr.write(`warning: ${line}\n`);
  }

  debug(line: string): void {
    if (this.verbose) this.#io.stderr.write(`${line}\n`);
  }
}
