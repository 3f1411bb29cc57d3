import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AirlockError } from '../errors.js';

/** A trust root airlock ships inside its package. */
export interface ShippedRoot {
  name: string;
  kind: 'public-key';
  purpose: string;
  url: string;
  file: URL;
  /** sha256 of the shipped file, checked at load so a tampered install is noticed */
  sha256: string;
  /** registries/repositories its signatures cover by default */
  scopes: string[];
}

export const REDHAT_RELEASE_KEY_3: ShippedRoot = {
  name: 'redhat-release-key-3',
  kind: 'public-key',
  purpose: "Red Hat product signing key (release key 3, RSA 4096): cosign signatures on Red Hat's product and OpenShift release images",
  url: 'https://security.access.redhat.com/data/63405576.txt',
  // src/trust → ../../trust and dist/trust → ../../trust both land on the package's trust/ folder.
  file: new URL('../../trust/redhat-release3.pub', import.meta.url),
  sha256: '64f89557ea8030ff839a45bb194594262a83502cdc69a4b04786e9d975a5c5aa',
  scopes: ['registry.redhat.io', 'registry.access.redhat.com', 'quay.io/openshift-release-dev'],
};

export async function readShipped(root: ShippedRoot): Promise<Buffer> {
  const bytes = await readFile(root.file);
  const got = createHash('sha256').update(bytes).digest('hex');
  if (got !== root.sha256) {
    throw new AirlockError('TRUST', `shipped trust root ${root.name} (${root.file.pathname}) hashes to ${got}, not ${root.sha256}: reinstall airlock`);
  }
  return bytes;
}
