import type { Command } from 'commander';
import { AirlockError } from '../errors.js';
import { collectGarbage, DEFAULT_GC_GRACE_MS } from '../server/gc.js';
import { startServer } from '../server/http.js';
import { DEFAULT_LIMITS, parseCount, parseDuration, parseSize, type ServerLimits } from '../server/limits.js';
import type { RunContext } from './main.js';

interface ServeFlags {
  root?: string;
  archive?: string;
  listen: string;
  referrersApi: boolean;
  tlsCert?: string;
  tlsKey?: string;
  readOnly: boolean;
  htpasswd?: string;
  htpasswdReadonly?: string;
  access?: string;
  insecurePublic: boolean;
  maxBlobSize: string;
  maxUploads: string;
  uploadMaxAge: string;
  bodyTimeout: string;
  minBodyRate: string;
  idleTimeout: string;
  sparseIndex: boolean;
}

interface GcFlags {
  grace: string;
  dryRun: boolean;
}

const SERVE_HELP = `
Authentication (HTTP Basic; bcrypt htpasswd files as Distribution and Quay use):
  htpasswd -cB users.htpasswd alice       read-write users: --htpasswd users.htpasswd
  htpasswd -cB readers.htpasswd nodes     read-only users:  --htpasswd-readonly readers.htpasswd
  An --access file narrows users to repositories, one rule per line:
    alice  push  team-a/*                 (push includes pull; NAME, NAME/* or *)
    *      pull  base/*                   (* as the user: every user)
  Without authentication, serve listens only on loopback unless --insecure-public.

Garbage collection (while no writable server runs on DIR):
  airlock serve gc --root DIR [--grace 1h] [--dry-run]
`;

function limitsFrom(flags: ServeFlags): Partial<ServerLimits> {
  return {
    maxBlobBytes: parseSize('--max-blob-size', flags.maxBlobSize),
    maxUploads: parseCount('--max-uploads', flags.maxUploads),
    uploadMaxAgeMs: parseDuration('--upload-max-age', flags.uploadMaxAge),
    bodyTimeoutMs: parseDuration('--body-timeout', flags.bodyTimeout),
    minBodyRate: parseSize('--min-body-rate', flags.minBodyRate),
    idleTimeoutMs: parseDuration('--idle-timeout', flags.idleTimeout),
  };
}

/** `airlock serve`: an OCI 1.1 registry over a storage directory, until SIGINT/SIGTERM; `serve gc` cleans the directory. */
export function register(program: Command, ctx: RunContext): void {
  const serve = program
    .command('serve')
    .description('run an OCI distribution-spec 1.1 registry (with the referrers API) over a storage directory, or read-only over an archive')
    .option('--root <dir>', 'storage directory (an OCI image layout plus per-repository metadata); created if missing')
    .option('--archive <file>', 'serve an airlock archive read-only, straight from the tar (no extraction)')
    .option('--listen <host:port>', 'address to listen on; port 0 picks a free port', '127.0.0.1:5000')
    .option('--no-referrers-api', 'answer 404 on /v2/<name>/referrers/ like a pre-1.1 registry')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--read-only', 'refuse pushes and deletes', false)
    .option('--htpasswd <file>', 'users who may pull and push (bcrypt htpasswd, as `htpasswd -B` writes)')
    .option('--htpasswd-readonly <file>', 'users who may only pull (bcrypt htpasswd)')
    .option('--access <file>', 'per-repository rules "USER pull|push REPOSITORY..." narrowing the htpasswd users')
    .option('--insecure-public', 'allow a non-loopback --listen without authentication (warned on every start)', false)
    .option('--max-blob-size <size>', 'largest blob one upload may grow to', '32GiB')
    .option('--max-uploads <n>', 'upload sessions open at once; more get 429', String(DEFAULT_LIMITS.maxUploads))
    .option('--upload-max-age <duration>', 'remove an upload session that received nothing for this long (checked at start and on a timer)', '24h')
    .option('--body-timeout <duration>', 'close a request whose body brings less than --min-body-rate over this long, or a client that leaves a response unread as long', '60s')
    .option('--min-body-rate <size>', 'bytes per second a request body must average over each --body-timeout window', '1KiB')
    .option('--idle-timeout <duration>', 'close a connection idle between requests, or still sending its request headers, after this long', '30s')
    .option('--no-sparse-index', 'refuse an index whose child manifests are not in the repository (like Distribution)')
    .addHelpText('after', SERVE_HELP)
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
        ...(flags.htpasswd !== undefined ? { htpasswd: flags.htpasswd } : {}),
        ...(flags.htpasswdReadonly !== undefined ? { htpasswdReadOnly: flags.htpasswdReadonly } : {}),
        ...(flags.access !== undefined ? { access: flags.access } : {}),
        insecurePublic: flags.insecurePublic,
        limits: limitsFrom(flags),
        sparseIndex: flags.sparseIndex,
        // one line per request under --verbose; server-side failures always
        log: (line: string) => {
          if (globals.verbose || line.startsWith('error:')) io.stderr.write(`${line}\n`);
        },
      });
      // warnings even under --quiet: they are about exposure, not progress
      for (const w of server.warnings) io.stderr.write(`airlock: ${w}\n`);
      if (!globals.quiet) {
        const auth = flags.htpasswd !== undefined || flags.htpasswdReadonly !== undefined ? ', basic auth' : '';
        io.stderr.write(
          `listening on ${server.url} (${flags.archive !== undefined ? `archive ${flags.archive}, read-only` : `storage ${flags.root ?? '-'}`}, referrers API ${flags.referrersApi ? 'on' : 'off'}${auth})\n`,
        );
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

  serve
    .command('gc')
    .description('remove blobs that no manifest, tag or referrer references, idle upload sessions and stale temp files, from a --root storage directory (refused while a writable serve holds it)')
    .option('--grace <duration>', 'keep unreferenced blobs written less than this long ago', `${DEFAULT_GC_GRACE_MS / 3_600_000}h`)
    .option('--dry-run', 'list what would be removed, remove nothing', false)
    .action(async (flags: GcFlags) => {
      const globals = ctx.globals();
      const { io } = ctx;
      // `--root` and `--upload-max-age` are serve's options (commander hands them to the parent)
      const parent = serve.opts<ServeFlags>();
      const stray = serve.options.map((o) => o.attributeName()).filter((k) => k !== 'root' && k !== 'uploadMaxAge' && serve.getOptionValueSource(k) === 'cli');
      if (stray.length > 0) throw new AirlockError('USAGE', `serve gc takes --root, --grace, --upload-max-age and --dry-run only, not --${kebab(stray[0]!)}`);
      if (parent.root === undefined) throw new AirlockError('USAGE', 'serve gc needs --root DIR, the storage directory to clean');
      const report = await collectGarbage(parent.root, {
        graceMs: parseDuration('--grace', flags.grace),
        uploadMaxAgeMs: parseDuration('--upload-max-age', parent.uploadMaxAge),
        dryRun: flags.dryRun,
        ...(io.signal ? { signal: io.signal } : {}),
        onRemove: (digest, size) => io.stdout.write(`${flags.dryRun ? 'would remove' : 'removed'} ${digest} ${size}\n`),
      });
      if (!globals.quiet) {
        io.stderr.write(
          `${flags.dryRun ? 'dry run: ' : ''}${report.manifests} manifest(s) walked, ${report.kept} blob(s) kept, ${report.removed} ${flags.dryRun ? 'to remove' : 'removed'} (${report.bytesRemoved} bytes), ` +
            `${report.linksRemoved} repository link(s) and ${report.uploadsRemoved} idle upload session(s) dropped\n`,
        );
      }
    });
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
