import { stringify } from 'yaml';
import type { PlannedRepository } from '../commands/unpack.js';

/**
 * OpenShift mirror resources (config.openshift.io/v1): an ImageDigestMirrorSet for
 * every source repository, and an ImageTagMirrorSet for those pulled by tag.
 * Shapes follow the CRDs in openshift/api (imagedigestmirrorsets / imagetagmirrorsets).
 */
export interface ClusterFile {
  name: string;
  content: string;
}

export function mirrorSets(plan: readonly PlannedRepository[], name: string): ClusterFile[] {
  const digestMirrors = plan.map((p) => ({ source: p.source, mirrors: [p.destination] }));
  const files: ClusterFile[] = [
    {
      name: 'imagedigestmirrorset.yaml',
      content: stringify({
        apiVersion: 'config.openshift.io/v1',
        kind: 'ImageDigestMirrorSet',
        metadata: { name },
        spec: { imageDigestMirrors: digestMirrors },
      }),
    },
  ];
  const tagged = plan.filter((p) => p.images.some((im) => im.tag !== undefined));
  if (tagged.length > 0) {
    files.push({
      name: 'imagetagmirrorset.yaml',
      content: stringify({
        apiVersion: 'config.openshift.io/v1',
        kind: 'ImageTagMirrorSet',
        metadata: { name },
        spec: { imageTagMirrors: tagged.map((p) => ({ source: p.source, mirrors: [p.destination] })) },
      }),
    });
  }
  return files;
}
