import type { Command } from 'commander';
import * as path from 'node:path';
import { readFile } from 'node:fs/promises';
import { checkArchive, type CheckedArchive } from '../archive/check.js';
import { AirlockError } from '../errors.js';
import { parsePolicyFile, verifyArchive, type Policy, type TrustRootData, type VerifyReport } from '../verify/index.js';
import { Logger } from './io.js';
import type { RunContext } from './main.js';
import { formatBytes, Progress } from './progress.js';

export function registerVerify(program: Command, ctx: RunContext): void {
  program
    .command('verify')
    .summary('check an archive offline: tar safety, every blob, the inventory, every signature against the policies')
    .description(
      'Check an archive without a network: only safe tar entries, every blob hashing to its name, every descriptor ' +
        'reachable from index.json present, the inventory agreeing with the layout, and FILE.sha256 when present; ' +
        'then every signature of every image and platform manifest against the policies, with the trust roots the ' +
        'archive carries (docs/verification.md). Exits 4 when the archive is malformed or hostile, 3 when an image ' +
        'fails its policy (one line per failing image on stderr).',
    )
    .argument('<archive>', 'the archive written by airlock pack')
    .option('--policy <file>', "verification policies (YAML, `policies:`) to apply instead of the archive's own")
    .option('--json', 'print a machine-readable report on stdout')
    .action(async (file: string, opts: { json?: boolean; policy?: string }) => {
      const g = ctx.globals();
      const log = new Logger(ctx.io, g);
      const archive = await openChecked(path.resolve(ctx.io.cwd, file), ctx, g.quiet);
      try {
        const checked = await checkSignatures(archive, ctx, opts.policy, { throwOnFailure: false });
        const report = { ...(verifyReport(archive) as object), ok: checked.report.ok, signatures: signaturesJson(checked.report) };
        if (opts.json) ctx.io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else {
          ctx.io.stdout.write(
            `${archive.path}: ${checked.report.ok ? 'ok' : 'FAILED'} — ${archive.blobs} blobs (${formatBytes(archive.bytes)}) verified; ` +
              `${archive.inventory.images.length} image(s), ${archive.inventory.referrers.length} referrer(s), ` +
              `${archive.inventory.trustRoots.length} trust root(s); sidecar ${archive.sidecar}\n`,
          );
          for (const r of checked.report.results) ctx.io.stdout.write(`  ${resultLine(r)}\n`);
        }
        failOn(checked.report, ctx);
        log.debug(`inventory ${archive.inventoryDesc.digest}`);
      } finally {
        await archive.reader.close();
      }
    });
}

/** Open and check an archive with a progress line; used by verify, inspect and unpack. */
export async function openChecked(file: string, ctx: RunContext, quiet: boolean): Promise<CheckedArchive> {
  const progress = new Progress(ctx.io, { quiet });
  try {
    return await checkArchive(file, {
      ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
      onProgress: (done, total) => progress.status(`checking blobs ${done}/${total}`, done === total),
    });
  } finally {
    progress.done();
  }
}

export function verifyReport(a: CheckedArchive): unknown {
  return {
    archive: a.path,
    ok: true,
    sidecar: a.sidecar,
    blobs: a.blobs,
    bytes: a.bytes,
    inventory: a.inventoryDesc.digest,
    images: a.inventory.images.map((im) => ({ source: im.source, digest: im.digest })),
    referrers: a.inventory.totals.referrers,
    trustRoots: a.inventory.trustRoots.map((t) => ({ name: t.name, kind: t.kind, digest: t.digest })),
  };
}

export interface SignatureCheck {
  report: VerifyReport;
  policies: Policy[];
  roots: TrustRootData[];
}

/** Load a `--policy` file, checking its roots against the trust roots the archive carries. */
export async function loadPolicyFile(file: string, ctx: RunContext, carried: readonly string[]): Promise<Policy[]> {
  const abs = path.resolve(ctx.io.cwd, file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    throw new AirlockError('USAGE', `--policy ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parsePolicyFile(text, abs, carried);
}

/**
 * Verify every image's signatures against the policies (the archive's, or a --policy
 * file's). With throwOnFailure, print one line per failing image on stderr and throw
 * AirlockError VERIFY (exit 3), so that nothing is pushed.
 */
export async function checkSignatures(
  archive: CheckedArchive,
  ctx: RunContext,
  policyFile: string | undefined,
  o: { throwOnFailure: boolean } = { throwOnFailure: true },
): Promise<SignatureCheck> {
  const policies = policyFile ? await loadPolicyFile(policyFile, ctx, archive.inventory.trustRoots.map((t) => t.name)) : undefined;
  const r = await verifyArchive(archive, policies ? { policies } : {});
  if (o.throwOnFailure) failOn(r.report, ctx);
  return r;
}

function failOn(report: VerifyReport, ctx: RunContext): void {
  if (report.ok) return;
  for (const line of report.failures) ctx.io.stderr.write(`airlock: verify: ${line}\n`);
  throw new AirlockError('VERIFY', `${report.failures.length} image(s) failed signature verification (listed above); nothing was pushed or trusted`, {
    side: 'archive',
    detail: { failures: report.failures },
  });
}

export function resultLine(r: VerifyReport['results'][number]): string {
  const what = `${r.image}${r.platform ? ` [${r.platform}]` : ''} ${r.digest.slice(0, 19)}…`;
  const signer = r.status === 'verified' ? r.signatures.find((x) => x.ok && x.root === r.root)?.identity : undefined;
  const by = r.status === 'verified' ? ` by ${r.root}${signer ? ` as ${signer}` : ''}${r.log ? ` (logged in ${r.log})` : ''}` : '';
  const pol = r.policy ? `; policy ${r.policy}${r.required ? ' (signature required)' : ''}` : '; no policy';
  const why = r.status !== 'verified' && r.reasons.length > 0 ? `: ${r.reasons.join('; ')}` : '';
  return `${r.status}${by}  ${what}${pol}${why}`;
}

export function signaturesJson(report: VerifyReport): unknown {
  return report.results.map((r) => ({
    image: r.image,
    digest: r.digest,
    ...(r.platform ? { platform: r.platform } : {}),
    status: r.status,
    ...(r.root ? { root: r.root } : {}),
    ...(r.log ? { log: r.log } : {}),
    ...(r.policy ? { policy: r.policy } : {}),
    required: r.required,
    failed: r.failed,
    reasons: r.reasons,
    signatures: r.signatures,
  }));
}
