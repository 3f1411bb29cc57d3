import { Option, type Command } from 'commander';
import * as path from 'node:path';
import { pack, type PackEvent, type PackReport } from '../commands/pack.js';
import { imageSetFromArgs, isBlocked, loadImageSet, platformsFor, registrySettingsFor, type ImageSet } from '../config/index.js';
import { AirlockError } from '../errors.js';
import { archiveMtime } from '../layout/format.js';
import { carriedTrustRoots } from '../trust/collect.js';
import { verifyPlan } from '../verify/index.js';
import { resultLine } from './verify.js';
import { Logger } from './io.js';
import type { RunContext } from './main.js';
import { formatBytes, formatRate, Progress } from './progress.js';
import { Registries } from './registry-setup.js';
import { parseConcurrency, parseRetries, parseTimeout } from './options.js';

interface PackCliOptions {
  config?: string;
  output: string;
  signatures: boolean;
  attachments?: string;
  platform?: string[];
  plainHttp?: boolean;
  authfile?: string;
  caFile?: string;
  concurrency: string;
  retries: string;
  timeout: string;
  json?: boolean;
  redhatTrust: boolean;
  rekorKeyUrl?: string;
  verify?: boolean;
  refreshTrust?: boolean;
}

export function registerPack(program: Command, ctx: RunContext): void {
  program
    .command('pack')
    .summary('resolve images and their signatures/referrers into one OCI archive')
    .description(
      'Resolve every image (indexes whole), find its signatures (and, when asked, other referrers) through the OCI 1.1 ' +
        'referrers API, its sha256-<hex> tag fallback and cosign .sig/.att/.sbom tags, and write one OCI image-layout ' +
        'tar with an inventory and the trust roots needed to verify it offline.',
    )
    .argument('[refs...]', 'image references (registry/repository[:tag][@digest])')
    .option('-c, --config <file>', 'image-set YAML (airlock ImageSet or oc-mirror ImageSetConfiguration)')
    .requiredOption('-o, --output <file>', 'archive to write (written as FILE.partial, renamed when complete, FILE.sha256 beside it)')
    .option('--no-signatures', 'do not look for or carry signatures')
    .option('--attachments <types>', "comma-separated artifact/media types or short names (sbom, spdx, cyclonedx, attestations), or 'all'")
    .option('--platform <os/arch>', 'only these platforms of multi-platform images (repeatable)', collect, undefined)
    .option('--plain-http', 'talk to every source registry over plain HTTP (no TLS)')
    .option('--authfile <file>', 'registry credentials (containers auth.json / docker config.json format)')
    .option('--ca-file <file>', 'extra CA certificates (PEM) to trust for registry TLS')
    .addOption(new Option('--concurrency <n>', 'parallel registry requests').default('8'))
    .addOption(new Option('--retries <n>', 'retries of a request that failed transiently (connection errors, 408, 429, 5xx), with backoff').default('4'))
    .addOption(new Option('--timeout <seconds>', 'give up on a connection, or a response that sends nothing, after this long (then retry)').default('60'))
    .option('--no-redhat-trust', "do not carry Red Hat's release key and Rekor key (overrides trust.redhat)")
    .option('--rekor-key-url <url>', "where to fetch Red Hat's Rekor public key (overrides trust.rekorKeyUrl)")
    .option('--verify', 'verify every signature against the policies before writing (as `airlock verify`); exit 3 and write nothing on failure')
    .option('--refresh-trust', "fetch Red Hat's release key from its URL instead of using the copy shipped with airlock")
    .option('--json', 'print a machine-readable report on stdout')
    .action(async (refs: string[], opts: PackCliOptions) => {
      const g = ctx.globals();
      const log = new Logger(ctx.io, g);
      const concurrency = parseConcurrency(opts.concurrency);
      const base = opts.config ? await loadImageSet(path.resolve(ctx.io.cwd, opts.config)) : undefined;
      const set = imageSetFromArgs(refs, { signatures: opts.signatures, attachments: opts.attachments, platform: opts.platform, plainHttp: opts.plainHttp }, base);
      for (const w of set.warnings) log.warn(w);
      const report = await runPack(set, opts, ctx, log, concurrency);
      if (opts.json) ctx.io.stdout.write(`${JSON.stringify(jsonReport(report), null, 2)}\n`);
      else printSummary(report, ctx);
    });
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

async function runPack(set: ImageSet, opts: PackCliOptions, ctx: RunContext, log: Logger, concurrency: number): Promise<PackReport> {
  const output = path.resolve(ctx.io.cwd, opts.output);
  const images = set.images.filter((im) => {
    if (!isBlocked(set, im.ref)) return true;
    log.info(`skipping ${im.ref.toString()}: blocked by the image set`);
    return false;
  });
  if (images.length === 0) throw new AirlockError('USAGE', 'every image in the set is blocked: nothing to pack');
  const registries = new Registries({
    plain: (r) => registrySettingsFor(set, r).plainHTTP,
    caFor: (r) => (opts.caFile ? path.resolve(ctx.io.cwd, opts.caFile) : registrySettingsFor(set, r).caFile),
    ...(opts.authfile ? { authfile: path.resolve(ctx.io.cwd, opts.authfile) } : {}),
    env: ctx.io.env,
    log,
    side: 'source',
    concurrency,
    retries: parseRetries(opts.retries),
    timeoutMs: parseTimeout(opts.timeout),
  });
  const progress = new Progress(ctx.io, { quiet: ctx.globals().quiet || false });
  let bytesDone = 0;
  try {
    const trust = {
      ...set.trust,
      redhat: opts.redhatTrust === false ? false : set.trust.redhat,
      ...(opts.rekorKeyUrl !== undefined ? { rekorKeyUrl: opts.rekorKeyUrl } : {}),
    };
    const trustRoots = await carriedTrustRoots(trust, {
      env: ctx.io.env,
      log,
      ...(opts.refreshTrust ? { refreshRedHatKey: true } : {}),
      ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
    });
    const imageSetJson = set.toJSON() as { policies?: unknown };
    const epoch = archiveMtime(undefined, ctx.io.env);
    return await pack({
      images: images.map((im) => ({ ref: im.ref, platforms: platformsFor(set, im) })),
      signatures: set.signatures,
      attachments: { matches: (t) => set.attachments.matches(t), none: !set.attachments.all && set.attachments.types.length === 0 },
      imageSet: imageSetJson,
      ...(opts.verify
        ? {
            beforeWrite: async (plan, graph, readSmall) => {
              const report = await verifyPlan(plan, graph, trustRoots, imageSetJson.policies, readSmall);
              for (const r of report.results) log.info(`verify: ${resultLine(r)}`);
              if (!report.ok) {
                for (const line of report.failures) ctx.io.stderr.write(`airlock: verify: ${line}\n`);
                throw new AirlockError('VERIFY', `${report.failures.length} image(s) failed signature verification (listed above); nothing was written`, { side: 'source' });
              }
            },
          }
        : {}),
      output,
      open: (registry, repository) => registries.repository(registry, repository),
      trustRoots,
      concurrency,
      epoch,
      ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
      onEvent: (e: PackEvent) => {
        if (e.type === 'image') progress.line(`resolved ${e.ref} → ${e.digest}`);
        else if (e.type === 'referrer') log.debug(`found ${e.kind} ${e.digest} for ${e.subject} (${e.foundBy})`);
        else if (e.type === 'warning') progress.line(`warning: ${e.message}`);
        else if (e.type === 'blob') {
          bytesDone += e.size;
          progress.status(`blobs ${e.done}/${e.total}  ${formatBytes(bytesDone)}  ${formatRate(bytesDone, progress.elapsedSeconds)}`, e.done === e.total);
        }
      },
    });
  } finally {
    progress.done();
    await registries.close();
  }
}

export function jsonReport(r: PackReport): unknown {
  const inv = r.inventory;
  return {
    output: r.output,
    sha256: r.sha256,
    size: r.size,
    images: inv.images.map((im) => ({
      source: im.source,
      digest: im.digest,
      mediaType: im.mediaType,
      platforms: im.platforms,
      skippedPlatforms: im.skippedPlatforms,
      referrers: countKinds(inv.referrers.filter((x) => x.subject === im.digest || im.platforms.some((p) => p.digest === x.subject))),
    })),
    referrers: inv.totals.referrers,
    trustRoots: inv.trustRoots.map((t) => ({ name: t.name, kind: t.kind, digest: t.digest, source: t.source })),
    totals: inv.totals,
    warnings: r.warnings,
    seconds: Number(r.seconds.toFixed(3)),
  };
}

function countKinds(list: { kind: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of list) out[x.kind] = (out[x.kind] ?? 0) + 1;
  return out;
}

function printSummary(r: PackReport, ctx: RunContext): void {
  const t = r.inventory.totals;
  const out = ctx.io.stdout;
  out.write(`wrote ${r.output} (${formatBytes(r.size)}, sha256 ${r.sha256})\n`);
  out.write(
    `  ${t.images} image(s), ${t.manifests} manifests, ${t.blobs} blobs (${formatBytes(t.bytes)}); ` +
      `signatures ${t.referrers.signature}, attestations ${t.referrers.attestation}, sboms ${t.referrers.sbom}, other ${t.referrers.other}\n`,
  );
  for (const im of r.inventory.images) {
    const filtered = im.skippedPlatforms.length > 0 ? ` (platform filter: ${im.platforms.length} of ${im.platforms.length + im.skippedPlatforms.length} platforms packed; the index is kept whole)` : '';
    out.write(`  ${im.source} @ ${im.digest}${filtered}\n`);
  }
  out.write(`  trust roots: ${r.inventory.trustRoots.map((x) => x.name).join(', ') || 'none'}\n`);
  out.write(`  ${r.seconds.toFixed(1)} s, ${formatRate(t.bytes, r.seconds)}\n`);
}
