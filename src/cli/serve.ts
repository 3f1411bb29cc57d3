import type { Command } from 'commander';
import { AirlockError } from '../errors.js';
import { startServer } from '../server/http.js';
import type { RunContext } from './main.js';

interface ServeFlags {
  root?: string;
  archive?: string;
  listen: string;
  referrersApi: boolean;
  tlsCert?: string;
  tlsKey?: string;
  readOnly: boolean;
}

/** `airlock serve`: an OCI 1.1 registry over a storage directory, until SIGINT/SIGTERM. */
export function register(program: Command, ctx: RunContext): void {
  program
    .command('serve')
    .description('run an OCI distribution-spec 1.1 registry (with the referrers API) over a storage directory, or read-only over an archive')
    .option('--root <dir>', 'storage directory (an OCI image layout plus per-repository metadata); created if missing')
    .option('--archive <file>', 'serve an airlock archive read-only, straight from the tar (no extraction)')
    .option('--listen <host:port>', 'address to listen on; port 0 picks a free port', '127.0.0.1:5000')
    .option('--no-referrers-api', 'answer 404 on /v2/<name>/referrers/ like a pre-1.1 registry')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--read-only', 'refuse pushes and deletes', false)
    .action(async (flags: ServeFlags) => {
      const globals = ctx.globals();
      const { io } = ctx;
      if ((flags.root === undefined) === (flags.archive === undefined)) {
        throw new AirlockError('USAGE', 'serve needs either --root DIR (read-write storage) or --archive FILE (read-only), not both');
      }
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
        throw new AirlockError('USAGE', '--tls-cert and --tls-key go together; give both or neither');
      }
      const server = await startServer({
        ...(flags.root !== undefined ? { root: flags.root } : {}),
        ...(flags.archive !== undefined ? { archive: flags.archive } : {}),
        listen: flags.listen,
        referrersApi: flags.referrersApi,
        readOnly: flags.readOnly || flags.archive !== undefined,
        ...(flags.tlsCert !== undefined && flags.tlsKey !== undefined ? { tls: { cert: flags.tlsCert, key: flags.tlsKey } } : {}),
        // one line per request under --verbose; server-side failures always
        log: (line: string) => {
          if (globals.verbose || line.startsWith('error:')) io.stderr.write(`${line}\n`);
        },
      });
      if (!globals.quiet) {
        io.stderr.write(`listening on ${server.url} (${flags.archive !== undefined ? `archive ${flags.archive}, read-only` : `storage ${flags.root ?? '-'}`}, referrers API ${flags.referrersApi ? 'on' : 'off'})\n`);
      }
      io.stdout.write(`${server.url}\n`);
      await new Promise<void>((resolve) => {
        if (!io.signal) return; // no signal: run until the process is killed
        if (io.signal.aborted) resolve();
        else io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await server.close();
      if (!globals.quiet) io.stderr.write('stopped\n');
    });
}
