import { writeFile } from 'node:fs/promises';

export interface ImageSetSpec {
  images?: readonly string[];
  /** `all`, or a list of types / short names */
  attachments?: string | readonly string[];
  signatures?: boolean;
  /** registries spoken to over plain HTTP; `*` for all */
  plainHttp?: readonly string[];
  /** lines under `trust:` (indented by two); default: no Red Hat roots, since tests have no network */
  trust?: readonly string[];
  /** further top-level YAML lines (policies, platforms, …) */
  extra?: readonly string[];
}

/** An airlock ImageSet file as the tests write it: local registries, plain HTTP, no outside trust roots. */
export function imageSetYaml(spec: ImageSetSpec): string {
  const lines = ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet'];
  if (spec.images && spec.images.length > 0) lines.push('images:', ...spec.images.map((i) => `  - ${i}`));
  if (spec.signatures !== undefined) lines.push(`signatures: ${spec.signatures}`);
  if (spec.attachments !== undefined) {
    lines.push(`attachments: ${typeof spec.attachments === 'string' ? spec.attachments : `[${spec.attachments.join(', ')}]`}`);
  }
  const plain = spec.plainHttp ?? ['*'];
  if (plain.length > 0) lines.push('registries:', ...plain.map((h) => `  "${h}": { plainHTTP: true }`));
  lines.push('trust:', ...(spec.trust ?? ['redhat: false']).map((l) => `  ${l}`));
  lines.push(...(spec.extra ?? []), '');
  return lines.join('\n');
}

export async function writeImageSet(file: string, spec: ImageSetSpec): Promise<string> {
  await writeFile(file, imageSetYaml(spec));
  return file;
}
