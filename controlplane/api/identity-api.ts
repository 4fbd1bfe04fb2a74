/** The Identity gRPC service: join, node renewal, workload signing, bundle fetch and watch. */
import type * as grpc from '@grpc/grpc-js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { fromPem } from '../../lib/x509/pem.js';
import type { Bundle, CaManager } from '../ca/ca-manager.js';
import type { IdentityService, SvidResult } from '../identity-service.js';
import type { KubeAttestor } from '../kube/kube-attestor.js';
import type { ControlPlaneMetrics } from '../metrics/controlplane-metrics.js';
import { peerCertificate, unary } from './handlers.js';

const messages = new WeakMap<Bundle, { trust_domain: string; roots: Buffer[]; sequence: number }>();

/** The wire form of a bundle, built once per bundle (every SVID response carries it). */
export function bundleMessage(bundle: Bundle) {
  let message = messages.get(bundle);
  if (message === undefined) {
    message = { trust_domain: bundle.trustDomain, roots: bundle.roots.map((pem) => fromPem(pem)), sequence: bundle.sequence };
    messages.set(bundle, message);
  }
  return message;
}

export function svidMessage(result: SvidResult) {
  return {
    spiffe_id: result.spiffeId,
    cert_chain: result.chain,
    serial: result.serial,
    not_after_ms: result.notAfter,
    bundle: bundleMessage(result.bundle),
  };
}

interface JoinRequest {
  token: string;
  csr: Buffer;
  features: string[];
}

export function identityHandlers(deps: {
  identity: IdentityService;
  ca: CaManager;
  logger: Logger;
  metrics?: ControlPlaneMetrics;
  /** Kubernetes pod attestation; absent, AttestKubernetes is refused (MESH_E_KUBE_ATTESTATION_OFF). */
  kube?: KubeAttestor;
}): grpc.UntypedServiceImplementation {
  const { identity, ca, logger, metrics, kube } = deps;
  const observe = metrics?.recordCall;
  return {
    Join: unary(
      logger,
      'Join',
      async (req: JoinRequest, call) => svidMessage(await identity.join({ token: req.token, csr: req.csr, peer: call.getPeer() })),
      observe,
    ),
    AttestKubernetes: unary(
      logger,
      'AttestKubernetes',
      async (req: { tokens: string[]; csr: Buffer }, call) => {
        if (kube === undefined) {
          const off = new MeshError(
            'MESH_E_KUBE_ATTESTATION_OFF',
            'this control plane does not attest Kubernetes pods: add kubernetes.attestation to controlplane.yaml',
          );
          throw await identity.refused(off, { actor: `peer:${call.getPeer()}`, action: 'kube.attest', spiffe_id: null });
        }
        return svidMessage(await kube.attest({ tokens: req.tokens, csr: req.csr, peer: call.getPeer() }));
      },
      observe,
    ),
    RenewNode: unary(
      logger,
      'RenewNode',
      async (req: { csr: Buffer }, call) => {
        const { node } = identity.authenticate(peerCertificate(call));
        return svidMessage(await identity.renewNode({ node, csr: req.csr }));
      },
      observe,
    ),
    SignWorkload: unary(
      logger,
      'SignWorkload',
      async (req: { spiffe_id: string; csr: Buffer }, call) => {
        const { node } = identity.authenticate(peerCertificate(call));
        return svidMessage(await identity.signWorkload({ node, spiffeId: req.spiffe_id, csr: req.csr }));
      },
      observe,
    ),
    GetBundle: unary(
      logger,
      'GetBundle',
      async (_req: unknown, call) => {
        identity.authenticate(peerCertificate(call));
        return bundleMessage(ca.bundle());
      },
      observe,
    ),
    WatchBundle: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      try {
        identity.authenticate(peerCertificate(call));
      } catch (err) {
        call.destroy(err as Error);
        return;
      }
      call.write(bundleMessage(ca.bundle()));
      const unsubscribe = ca.onBundleChange((bundle) => call.write(bundleMessage(bundle)));
      metrics?.streamOpened('bundle');
      let open = true;
      const done = () => {
        unsubscribe();
        if (open) metrics?.streamClosed('bundle');
        open = false;
      };
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
  };
}
