import { stringify } from 'yaml';
import type { Digest } from '../oci/digest.js';
import { digestHex } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import type { ClusterFile } from './mirror-sets.js';

/**
 * Cluster resources for operator catalogs carried by airlock.
 *
 * CatalogSource (operators.coreos.com/v1alpha1, OLM v0) and ClusterCatalog
 * (olm.operatorframework.io/v1, OLM v1) name the catalog **by digest**: what runs on the
 * cluster is exactly the catalog that was verified at unpack, and it cannot move under a
 * tag. (oc-mirror writes the mirrored tag.)
 *
 * Which name they use:
 * - the catalog carried unchanged (the default) is named by its *source* repository,
 *   `registry.redhat.io/redhat/redhat-operator-index@sha256:…`, and its repository gets an
 *   ImageDigestMirrorSet entry, like every bundle and related image: the node pulls from
 *   the mirror, and a ClusterImagePolicy scoped to the vendor's repository (which airlock
 *   writes from the archive's policies) still applies to the catalog pod, with the
 *   vendor's signature. oc-mirror leaves the catalog out of its IDMS because it names
 *   the mirror directly;
 * - a filtered catalog, which has no upstream, is named by its mirror repository and
 *   needs no mirror-set entry;
 * - `imageName: 'mirror'` names the mirror for an unchanged catalog too (for clusters
 *   without the mirror sets applied); the catalog is then left out of the IDMS.
 *
 * Names follow oc-mirror (clusterresources.go generateCatalogSource): `cs-` / `cc-`, the
 * last path component of the catalog repository, `-`, then the first 12 characters of
 * the tag (or of the digest's hex when there is no tag), lower-cased, every character
 * outside [a-z0-9-] mapped to `-`. airlock also trims the name to 63 characters (an
 * RFC 1035 label) and, when two catalogs would get the same name, appends the first 8
 * hex digits of the later one's digest instead of overwriting the file.
 */
export interface MirroredCatalog {
  /** the catalog as the image set names it (source side) */
  readonly source: Reference;
  /** `host[:port]/path` where unpack pushed the catalog image */
  readonly mirrorRepository: string;
  /** digest of the catalog manifest (or index) as pushed: the original's, or the filtered image's */
  readonly digest: Digest;
  /** the tag the name is derived from: the source tag for an unchanged catalog, targetTag (else the source tag) for a filtered one */
  readonly tag?: string;
  /** a filtered image built by airlock (then always named by its mirror repository) */
  readonly filtered: boolean;
  /** name the mirror instead of the source (unchanged catalogs only; default false) */
  readonly imageName?: 'source' | 'mirror';
}

export const CATALOG_SOURCE_NAMESPACE = 'openshift-marketplace';
const HASH_TRUNC = 12;
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

function rfc1035(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9-]/g, '-');
}

/** `cs-redhat-operator-index-v4-18` (prefix `cs`) or `cc-…` (prefix `cc`). */
export function catalogResourceName(prefix: 'cs' | 'cc', c: MirroredCatalog): string {
  const repo = c.source.repository.split('/').pop()!;
  const suffix = c.tag !== undefined ? rfc1035(c.tag.slice(0, HASH_TRUNC)) : digestHex(c.digest).slice(0, HASH_TRUNC);
  let name = rfc1035(`${prefix}-${repo}-${suffix || '0'}`).slice(0, 63);
  name = name.replace(/-+$/, '');
  if (!DNS1035.test(name)) throw new Error(`cannot derive a resource name from ${c.source.toString()}: "${name}"`);
  return name;
}

/** The image reference a resource names (always by digest). */
export function catalogImageRef(c: MirroredCatalog): string {
  const useMirror = c.filtered || c.imageName === 'mirror';
  return `${useMirror ? c.mirrorRepository : c.source.name}@${c.digest}`;
}

function uniqueNames(prefix: 'cs' | 'cc', catalogs: readonly MirroredCatalog[]): string[] {
  const used = new Set<string>();
  return catalogs.map((c) => {
    let n = catalogResourceName(prefix, c);
    if (used.has(n)) n = `${n.slice(0, 54).replace(/-+$/, '')}-${digestHex(c.digest).slice(0, 8)}`;
    used.add(n);
    return n;
  });
}

function annotations(c: MirroredCatalog): Record<string, string> {
  return {
    'airlock.dev/source': c.source.toString(),
    'airlock.dev/catalog': c.filtered ? 'filtered by airlock (not signed by the catalog vendor)' : 'unchanged',
  };
}

/** One CatalogSource and one ClusterCatalog file per catalog: `cs-….yaml`, `cc-….yaml`. */
export function catalogResources(catalogs: readonly MirroredCatalog[]): ClusterFile[] {
  const cs = uniqueNames('cs', catalogs);
  const cc = uniqueNames('cc', catalogs);
  const files: ClusterFile[] = [];
  catalogs.forEach((c, i) => {
    const image = catalogImageRef(c);
    const display = `${c.source.repository.split('/').pop()!}${c.tag !== undefined ? ` ${c.tag}` : ''}${c.filtered ? ' (filtered)' : ''}`;
    files.push({
      name: `${cs[i]!}.yaml`,
      content: stringify({
        apiVersion: 'operators.coreos.com/v1alpha1',
        kind: 'CatalogSource',
        metadata: { name: cs[i]!, namespace: CATALOG_SOURCE_NAMESPACE, annotations: annotations(c) },
        spec: { sourceType: 'grpc', image, displayName: display },
      }),
    });
    files.push({
      name: `${cc[i]!}.yaml`,
      content: stringify({
        apiVersion: 'olm.operatorframework.io/v1',
        kind: 'ClusterCatalog',
        metadata: { name: cc[i]!, annotations: annotations(c) },
        // no pollIntervalMinutes: the CRD forbids it with a digest reference
        spec: { source: { type: 'Image', image: { ref: image } } },
      }),
    });
  });
  return files;
}

/** An operator image as unpack pushed it. */
export interface MirroredOperatorImage {
  /** the reference the cluster will pull (as the catalog writes it) */
  readonly source: Reference;
  /** `host[:port]/path` where unpack pushed it */
  readonly mirrorRepository: string;
}

/**
 * ImageDigestMirrorSet / ImageTagMirrorSet (config.openshift.io/v1) for the operator
 * repositories: one entry per source repository, repository-scoped (exact repositories,
 * as airlock's other mirror sets), mirrors sorted. Images the catalog names by digest go
 * to the IDMS; images named by tag only go to the ITMS (the pod asks for the tag, and
 * an IDMS applies to digest pulls only). The catalogs named by their source repository
 * (`catalogs`) join the IDMS.
 */
export function operatorMirrorSets(images: readonly MirroredOperatorImage[], catalogs: readonly MirroredCatalog[], name: string): ClusterFile[] {
  const byDigest = new Map<string, Set<string>>();
  const byTag = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, src: string, dst: string): void => {
    let s = m.get(src);
    if (s === undefined) m.set(src, (s = new Set()));
    s.add(dst);
  };
  for (const im of images) add(im.source.digest !== undefined ? byDigest : byTag, im.source.name, im.mirrorRepository);
  for (const c of catalogs) if (!c.filtered && c.imageName !== 'mirror') add(byDigest, c.source.name, c.mirrorRepository);
  const entries = (m: Map<string, Set<string>>) =>
    [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([source, mirrors]) => ({ source, mirrors: [...mirrors].sort() }));
  const files: ClusterFile[] = [];
  if (byDigest.size > 0) {
    files.push({
      name: 'imagedigestmirrorset-operators.yaml',
      content: stringify({ apiVersion: 'config.openshift.io/v1', kind: 'ImageDigestMirrorSet', metadata: { name: `${name}-operators` }, spec: { imageDigestMirrors: entries(byDigest) } }),
    });
  }
  if (byTag.size > 0) {
    files.push({
      name: 'imagetagmirrorset-operators.yaml',
      content: stringify({ apiVersion: 'config.openshift.io/v1', kind: 'ImageTagMirrorSet', metadata: { name: `${name}-operators` }, spec: { imageTagMirrors: entries(byTag) } }),
    });
  }
  return files;
}
