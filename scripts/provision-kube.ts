/**
 * Provisions the Kubernetes API server and etcd that the Kubernetes side of the
 * mesh is tested against (and `npm run demo -- --k8s` runs), into the same
 * cache and under the same lock as Envoy and Consul (provision.ts). No registry
 * ships a kube-apiserver binary, so both are built from their Go modules like
 * Consul: test/tools/kube-apiserver (k8s.io/kubernetes, upstream's
 * cmd/kube-apiserver main, version stamped by -ldflags as upstream's release
 * build does) and test/tools/etcd (go.etcd.io/etcd/server/v3's etcdmain). The
 * first build takes minutes (about 540 s of CPU and 2.7 GB for the API server);
 * later runs reuse the binaries, and a fresh clone with a warm Go build cache
 * rebuilds in seconds.
 */
import { MeshError } from '../lib/errors.js';
import { pinnedGoModule, provisionGoTool, type ToolInfo, underProvisionLock } from './provision.js';

export interface KubeTools {
  readonly kubeApiserver: ToolInfo;
  readonly etcd: ToolInfo;
}

export function parseKubeApiserverVersion(output: string): string | undefined {
  return /^Kubernetes v(\S+)$/m.exec(output.trim())?.[1];
}

export function parseEtcdVersion(output: string): string | undefined {
  return /^etcd Version: (\S+)$/m.exec(output)?.[1];
}

/** -ldflags of upstream's release build: strip symbols, stamp the version kube-apiserver reports. */
export function kubeLdflags(version: string): string {
  const [major, minor] = version.split('.');
  if (major === undefined || minor === undefined) throw new MeshError('MESH_E_PROVISION_FAILED', `not a Kubernetes version: ${version}`);
  const v = 'k8s.io/component-base/version';
  return `-s -w -X ${v}.gitVersion=v${version} -X ${v}.gitMajor=${major} -X ${v}.gitMinor=${minor}`;
}

export async function provisionKube(options: { root: string; cacheDir: string; progress?: (line: string) => void }): Promise<KubeTools> {
  return underProvisionLock(options, async (progress) => {
    const kubeVersion = await pinnedGoModule(options.root, 'kube-apiserver', 'k8s.io/kubernetes');
    const etcdVersion = await pinnedGoModule(options.root, 'etcd', 'go.etcd.io/etcd/server/v3');
    const etcd = await provisionGoTool(
      options.root,
      options.cacheDir,
      { name: 'etcd', pinned: etcdVersion, what: `go.etcd.io/etcd/server/v3 v${etcdVersion}`, parse: parseEtcdVersion, ldflags: '-s -w' },
      progress,
    );
    const kubeApiserver = await provisionGoTool(
      options.root,
      options.cacheDir,
      {
        name: 'kube-apiserver',
        pinned: kubeVersion,
        what: `k8s.io/kubernetes v${kubeVersion} (cmd/kube-apiserver)`,
        note: ' (first run: about 6 minutes on two cores)',
        parse: parseKubeApiserverVersion,
        ldflags: kubeLdflags(kubeVersion),
      },
      progress,
    );
    return Object.freeze({ kubeApiserver, etcd });
  });
}
