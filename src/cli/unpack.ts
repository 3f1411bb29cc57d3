import { Option, type Command } from 'commander';
import * as path from 'node:path';
import { mirrorSets } from '../cluster/mirror-sets.js';
import { writeClusterFiles } from '../cluster/write.js';
import { parseDestination, planUnpack, unpack, type Mapping, type UnpackReport } from '../commands/unpack.js';
import { Logger } from './io.js';
import type { RunContext } from './main.js';
import { parseConcurrency, parseRetries, parseTimeout } from './options.js';
import { formatBytes, formatRate, Progress } from './progress.js';
import { Registries } from './registry-setup.js';
import { checkSignatures, openChecked } from './verify.js';
import { clusterPolicies } from '../cluster/policies.js';

interface UnpackCliOptions {
  to: string;
  keepHost?: boolean;
  plainHttp?: boolean;
  authfile?: string;
  caFile?: string;
  dryRun?: boolean;
  clusterResources: string;
  concurrency: string;
  retries: string;
  timeout: string;
  json?: boolean;
  policy?: string;
}

export function registerUnpack(program: Command, ctx: RunContext): void {
  program
    .command('unpack')
    .summary('check an archive, then push it into the disconnected registry with digests and referrers intact')
    .description(
      'Check every byte of the archive and every signature against the policies first (as `airlock verify`); nothing ' +
        'is pushed unless it all checks out (exit 4: archive malformed; exit 3: an image fails its policy). ' +
        'Then push blobs, manifests (as their exact bytes), referrers (through the referrers API, or merged into the ' +
        'sha256-<hex> fallback tag index where the registry has no API), cosign tags and tags, and write ' +
        'ImageDigestMirrorSet/ImageTagMirrorSet, ClusterImagePolicy, registries.d and policy.json for the cluster.',
    )
    .argument('<archive>', 'the archive written by airlock pack')
    .requiredOption('--to <host[:port][/prefix]>', 'destination registry and optional repository prefix')
    .option('--keep-host', 'keep the source registry host as the first path element under the prefix')
    .option('--plain-http', 'talk to the destination over plain HTTP (no TLS)')
    .option('--authfile <file>', 'registry credentials (containers auth.json / docker config.json format)')
    .option('--ca-file <file>', 'extra CA certificates (PEM) to trust for the destination TLS')
    .option('--dry-run', 'print the plan and push nothing')
    .option('--policy <file>', "verification policies (YAML, `policies:`) to apply instead of the archive's own")
    .option('--cluster-resources <dir>', 'where to write the cluster resources', './cluster-resources')
    .addOption(new Option('--concurrency <n>', 'parallel blob pushes').default('8'))
    .addOption(new Option('--retries <n>', 'retries of a request that failed transiently (connection errors, 408, 429, 5xx), with backoff').default('4'))
    .addOption(new Option('--timeout <seconds>', 'give up on a connection, or a response that sends nothing, after this long (then retry)').default('60'))
    .option('--json', 'print a machine-readable report on stdout')
    .action(async (file: string, opts: UnpackCliOptions) => {
      const g = ctx.globals();
      const log = new Logger(ctx.io, g);
      const concurrency = parseConcurrency(opts.concurrency);
      const mapping: Mapping = { ...parseDestination(opts.to), keepHost: opts.keepHost === true };
      const archive = await openChecked(path.resolve(ctx.io.cwd, file), ctx, g.quiet);
      let checked: Awaited<ReturnType<typeof checkSignatures>>;
      try {
        // Signatures are verified before any registry is touched: a failure pushes nothing.
        checked = await checkSignatures(archive, ctx, opts.policy);
      } catch (e) {
        await archive.reader.close();
        throw e;
      }
      const registries = new Registries({
        plain: () => opts.plainHttp === true,
        caFor: () => (opts.caFile ? path.resolve(ctx.io.cwd, opts.caFile) : undefined),
        ...(opts.authfile ? { authfile: path.resolve(ctx.io.cwd, opts.authfile) } : {}),
        env: ctx.io.env,
        log,
        side: 'destination',
        concurrency,
        retries: parseRetries(opts.retries),
        timeoutMs: parseTimeout(opts.timeout),
      });
      const progress = new Progress(ctx.io, { quiet: g.quiet });
      try {
        const plan = planUnpack(archive, mapping);
        if (opts.dryRun) {
          const api = await Promise.all(
            plan.map(async (p) => {
              const slash = p.destination.indexOf('/');
              const repo = registries.repository(p.destination.slice(0, slash), p.destination.slice(slash + 1));
              const first = archive.inventory.images.find((im) => im.repository === p.source);
              if (!first) return 'unknown';
              const listed = await repo.referrersFromApi({ mediaType: first.mediaType, digest: first.digest, size: first.size });
              return listed === undefined ? 'no (fallback tag index)' : 'yes';
            }),
          );
          const out = plan.map((p, i) => ({ ...p, referrersApi: api[i] }));
          if (opts.json) ctx.io.stdout.write(`${JSON.stringify({ dryRun: true, repositories: out }, null, 2)}\n`);
          else {
            ctx.io.stdout.write(`plan (dry run, nothing pushed):\n`);
            for (const p of out) {
              ctx.io.stdout.write(`  ${p.source} → ${p.destination}  [referrers API: ${p.referrersApi}]\n`);
              for (const im of p.images) ctx.io.stdout.write(`    ${im.source} → ${im.destination}\n`);
              ctx.io.stdout.write(`    ${p.referrers} referrer(s), ${p.cosignTags.length} cosign tag(s)\n`);
            }
          }
          return;
        }
        let bytes = 0;
        const report = await unpack({
          archive,
          mapping,
          open: (registry, repository) => registries.repository(registry, repository),
          concurrency,
          ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
          onEvent: (e) => {
            if (e.type === 'blob') {
              if (e.action === 'pushed') bytes += e.size;
              progress.status(`pushing ${e.repository}: ${formatBytes(bytes)} ${formatRate(bytes, progress.elapsedSeconds)}`);
            } else if (e.type === 'manifest' && e.tag) progress.line(`tagged ${e.repository}:${e.tag} → ${e.digest}`);
            else if (e.type === 'fallback') log.debug(`fallback index ${e.repository} ${e.subject}: ${e.action} ${e.referrer}`);
          },
        });
        progress.done();
        const name = `airlock-${archive.inventoryDesc.digest.slice(7, 19)}`;
        const cip = clusterPolicies({ name, policies: checked.policies, roots: checked.roots, repositories: report.repositories });
        for (const n of cip.notes) log.warn(n);
        const files = [...mirrorSets(report.repositories, name), ...cip.files];
        const written = await writeClusterFiles(path.resolve(ctx.io.cwd, opts.clusterResources), files);
        if (opts.json) ctx.io.stdout.write(`${JSON.stringify({ ...report, clusterResources: written }, null, 2)}\n`);
        else printSummary(report, written, ctx);
      } finally {
        progress.done();
        await archive.reader.close();
        await registries.close();
      }
    });
}

function printSummary(r: UnpackReport, written: string[], ctx: RunContext): void {
  const out = ctx.io.stdout;
  const p = r.pushed;
  out.write(
    `pushed ${p.blobs} blob(s) (${formatBytes(p.bytes)}), mounted ${p.mounted}, ${p.present} already present; ` +
      `${p.manifests} manifest(s) pushed, ${p.manifestsPresent} already present; ${r.fallbackUpdates} fallback index update(s); ${r.seconds.toFixed(1)} s\n`,
  );
  for (const repo of r.repositories) {
    out.write(`  ${repo.source} → ${repo.destination}\n`);
    for (const im of repo.images) out.write(`    ${im.destination}\n`);
    out.write(`    ${repo.referrers} referrer(s), ${repo.cosignTags.length} cosign tag(s)\n`);
  }
  for (const f of written) out.write(`  wrote ${f}\n`);
}
