/**
 * The one place the control plane makes its @kubernetes/client-node
 * KubeConfig: from `kubernetes.kubeconfig` (a file), else the in-cluster
 * service account. The library is loaded only here and only when the
 * `kubernetes` section is present (it takes about a second to load).
 */
import { MeshError } from '../../lib/errors.js';

export type KubeClientModule = typeof import('@kubernetes/client-node');

export interface KubeConnection {
  readonly k8s: KubeClientModule;
  readonly kc: import('@kubernetes/client-node').KubeConfig;
}

export async function connectKube(kubeconfig: string | undefined): Promise<KubeConnection> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (kubeconfig === undefined) kc.loadFromCluster();
    else kc.loadFromFile(kubeconfig);
  } catch (err) {
    throw new MeshError(
      'MESH_E_CONFIG_INVALID',
      `kubernetes.kubeconfig: cannot load ${kubeconfig ?? 'the in-cluster service account'}: ${(err as Error).message}`,
    );
  }
  if (kc.getCurrentCluster() === null) {
    throw new MeshError('MESH_E_CONFIG_INVALID', `kubernetes.kubeconfig: ${kubeconfig ?? 'in-cluster config'} names no current cluster`);
  }
  return { k8s, kc };
}
