import { Command, CommanderError } from 'commander';
import { AirlockError, errorLine, ExitCode, exitCodeFor } from '../errors.js';
import { VERSION } from '../version.js';
import { type CliIO, processIO } from './io.js';
import { COMMANDS } from './commands.js';

export interface GlobalOptions {
  verbose: boolean;
  quiet: boolean;
}

/** State a command's action hands back to `main`. */
export interface RunContext {
  io: CliIO;
  globals: () => GlobalOptions;
  /** set by a command's action: its exit code */
  setExit: (code: number) => void;
}

const EXIT_HELP = `
Exit codes:
  0    success
  1    failure (network, registry, file system)
  2    usage or configuration error
  3    verification failed (a digest, signature or policy check)
  4    the archive is malformed, hostile or inconsistent
  130  interrupted
`;

/**
 * The whole CLI as a function: parse `argv` (without node and script), run, and
 * return the exit code. Nothing here calls process.exit; the bin maps the result.
 */
export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  let exit: number = ExitCode.OK;
  let verbose = argv.includes('--verbose') || argv.includes('-v');
  const program = new Command('airlock')
    .description('Carry signed container images, their signatures and referrers across an air gap, and verify them offline.')
    .version(VERSION, '--version', 'print the version')
    .option('-v, --verbose', 'more detail on stderr, and stack traces on failure', false)
    .option('-q, --quiet', 'no progress lines on stderr', false)
    .addHelpText('after', EXIT_HELP)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s),
    });
  const ctx: RunContext = {
    io,
    globals: () => {
      const o = program.opts<{ verbose: boolean; quiet: boolean }>();
      verbose = o.verbose;
      return { verbose: o.verbose, quiet: o.quiet };
    },
    setExit: (code) => {
      exit = code;
    },
  };
  for (const register of COMMANDS) register(program, ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exit;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
        return ExitCode.OK;
      }
      return e.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    reportError(e, io, verbose);
    return exitCodeFor(e);
  }
}

export function reportError(e: unknown, io: CliIO, verbose: boolean): void {
  io.stderr.write(`airlock: ${errorLine(e)}\n`);
  if (verbose && e instanceof Error) {
    io.stderr.write(`${e.stack ?? ''}\n`);
    let cause = e.cause;
    while (cause instanceof Error) {
      io.stderr.write(`caused by: ${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
    }
    if (e instanceof AirlockError && e.detail) io.stderr.write(`detail: ${JSON.stringify(e.detail)}\n`);
  }
}
