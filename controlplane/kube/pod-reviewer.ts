/**
 * The Kubernetes API as pod attestation needs it, behind a small interface
 * (one shared fake: test/fakes/pod-reviewer.ts): TokenReview of a token for an
 * audience, and the pod a token is bound to. Every failure to reach or read
 * the API server is MESH_E_KUBE_UNREACHABLE; tokens never appear in errors.
 */
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { KubeConnection } from './kube-client.js';

export type TokenReviewOutcome =
  | {
      readonly authenticated: true;
      /** system:serviceaccount:<ns>:<sa> */
      readonly username: string;
      readonly extra: Readonly<Record<string, readonly string[]>>;
      /** The audiences the token was accepted for (status.audiences). */
      readonly audiences: readonly string[];
    }
  | { readonly authenticated: false; readonly error: string };

export interface PodFacts {
  readonly uid: string;
  /** spec.nodeName: "" when the pod is not scheduled. */
  readonly nodeName: string;
}

export interface PodReviewer {
  review(token: string, audience: string): Promise<TokenReviewOutcome>;
  /** The pod, or undefined when there is none of that name. */
  pod(namespace: string, name: string): Promise<PodFacts | undefined>;
}

function withTimeout<T>(clock: Clock, ms: number, what: string, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(ms, () =>
      reject(new MeshError('MESH_E_KUBE_UNREACHABLE', `the Kubernetes API server did not answer ${what} within ${ms} ms`)),
    );
    work.then(
      (value) => {
        timer.cancel();
        resolve(value);
      },
      (err: unknown) => {
        timer.cancel();
        reject(err);
      },
    );
  });
}

const statusOf = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
};

function unreachable(what: string, err: unknown): MeshError {
  const status = statusOf(err);
  const reason = status === undefined ? (err as Error).message : `HTTP ${status}`;
  return new MeshError('MESH_E_KUBE_UNREACHABLE', `the Kubernetes API server refused or failed ${what}: ${reason.slice(0, 300)}`, {
    details: { what, ...(status === undefined ? {} : { status }) },
  });
}

/** The real API server, through @kubernetes/client-node (controlplane/kube/kube-client.ts). */
export function kubePodReviewer(conn: KubeConnection, options: { clock: Clock; timeoutMs: number }): PodReviewer {
  const auth = conn.kc.makeApiClient(conn.k8s.AuthenticationV1Api);
  const core = conn.kc.makeApiClient(conn.k8s.CoreV1Api);
  const { clock, timeoutMs } = options;
  return {
    async review(token, audience) {
      let answer: import('@kubernetes/client-node').V1TokenReview;
      try {
        answer = await withTimeout(
          clock,
          timeoutMs,
          'a TokenReview',
          auth.createTokenReview({
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
          }),
        );
      } catch (err) {
        throw err instanceof MeshError ? err : unreachable('a TokenReview', err);
      }
      const status = answer.status;
      if (status?.authenticated !== true || status.user?.username === undefined) {
        return { authenticated: false, error: status?.error ?? 'not authenticated' };
      }
      return {
        authenticated: true,
        username: status.user.username,
        extra: status.user.extra ?? {},
        audiences: status.audiences ?? [],
      };
    },
    async pod(namespace, name) {
      try {
        const pod = await withTimeout(clock, timeoutMs, `reading pod ${namespace}/${name}`, core.readNamespacedPod({ namespace, name }));
        return { uid: pod.metadata?.uid ?? '', nodeName: pod.spec?.nodeName ?? '' };
      } catch (err) {
        if (err instanceof MeshError) throw err;
        if (statusOf(err) === 404) return undefined;
        throw unreachable(`reading pod ${namespace}/${name}`, err);
      }
    },
  };
}
