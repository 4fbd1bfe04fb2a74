/**
 * Service-account tokens the test API server cannot be asked for: TokenRequest
 * refuses expirations under 10 minutes, so an already expired pod-bound token
 * is signed here with the API server's own service-account key (<dir>/sa.key,
 * scripts/kube-local.ts), with the claims TokenRequest puts in a pod-bound
 * token. The API server treats it as one it issued that has since expired.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import type { TestKube } from './kube.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A pod-bound token of the pod's service account for `audiences`, valid from `fromSec` to `toSec` (Unix seconds). */
export async function signedPodToken(
  kube: Pick<TestKube, 'dir' | 'core'>,
  pod: k8s.V1Pod,
  audiences: string[],
  window: { fromSec: number; toSec: number },
): Promise<string> {
  const ns = pod.metadata?.namespace ?? '';
  const saName = pod.spec?.serviceAccountName ?? 'default';
  const sa = await kube.core.readNamespacedServiceAccount({ namespace: ns, name: saName });
  const key = createPrivateKey(await readFile(path.join(kube.dir, 'sa.key'), 'utf8'));
  const header = b64({ alg: 'ES256', typ: 'JWT' });
  const payload = b64({
    aud: audiences,
    exp: window.toSec,
    iat: window.fromSec,
    nbf: window.fromSec,
    iss: ISSUER,
    sub: `system:serviceaccount:${ns}:${saName}`,
    'kubernetes.io': {
      namespace: ns,
      pod: { name: pod.metadata?.name, uid: pod.metadata?.uid },
      serviceaccount: { name: saName, uid: sa.metadata?.uid },
    },
  });
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${header}.${payload}.${signature}`;
}

/** A pod of `serviceAccount` scheduled on the Kubernetes node `node` (spec.nodeName; no scheduler runs here). */
export function scheduledPod(
  kube: Pick<TestKube, 'core'>,
  ns: string,
  name: string,
  serviceAccount: string,
  node: string,
): Promise<k8s.V1Pod> {
  return kube.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        nodeName: node,
        serviceAccountName: serviceAccount,
        automountServiceAccountToken: false,
        containers: [{ name: 'app', image: 'example.invalid/app:1' }],
      },
    },
  });
}
