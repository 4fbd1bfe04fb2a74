/**
 * The agent's client of the control plane's Identity API. The server is
 * authenticated by its SPIFFE ID (spiffe://<td>/mesh/controlplane) chaining to
 * the given bundle; there is no trust on first use and no DNS name check.
 * After joining, calls authenticate with the node SVID (mTLS).
 */
import * as grpc from '@grpc/grpc-js';
import { MeshError } from '../../lib/errors.js';
import type { PolicyKind, PolicySet } from '../../lib/policy/schema.js';
import { contract, fromServiceError } from '../../lib/proto/contract.js';
import type { NodeStatusReportWire } from '../../lib/proto/node-status.js';
import { toPem } from '../../lib/x509/pem.js';

export const AGENT_FEATURES = Object.freeze(['bundle-watch', 'node-renew']);

export interface Svid {
  spiffeId: string;
  /** Leaf then intermediates, PEM. */
  chainPem: string;
  serial: string;
  notAfter: number;
  bundle: BundleUpdate;
}

export interface BundleUpdate {
  trustDomain: string;
  rootsPem: string;
  sequence: number;
}

export interface ControlPlaneClient {
  join(token: string, csr: Buffer): Promise<Svid>;
  renewNode(csr: Buffer): Promise<Svid>;
  /**
   * AttestKubernetes: a node SVID for the pods whose projected service-account
   * tokens these are (no node SVID needed). Optional: clients made for other
   * uses need not have it. MESH_E_CONTROLPLANE_UNSUPPORTED from an older control plane.
   */
  attestKubernetes?(tokens: readonly string[], csr: Buffer): Promise<Svid>;
  signWorkload(spiffeId: string, csr: Buffer): Promise<Svid>;
  getBundle(): Promise<BundleUpdate>;
  /** Calls onBundle with the current bundle and every change; returns a cancel function. */
  watchBundle(onBundle: (bundle: BundleUpdate) => void, onError: (err: MeshError) => void): () => void;
  /** Policy.Watch: every set the control plane sends (state of the world) goes to onUpdate; returns a cancel function. */
  watchPolicy(request: PolicyWatchRequest, handlers: PolicyWatchHandlers): () => void;
  /**
   * NodeStatus.Report: the node's sync status; answers how often the control
   * plane wants a heartbeat. MESH_E_CONTROLPLANE_UNSUPPORTED from a control
   * plane without the service. Optional: clients made for other uses need not have it.
   */
  reportStatus?(report: NodeStatusReportWire): Promise<{ heartbeatMs: number }>;
  close(): void;
}

export interface PolicyWatchRequest {
  /** The revision held (0: none, or held for another interest). */
  revision: number;
  services: readonly string[];
  spiffeIds: readonly string[];
}

export interface PolicyWatchHandlers {
  /** The control plane accepted the watch (its response headers arrived). */
  onOpen?: () => void;
  onUpdate: (set: PolicySet) => void;
  /** The watch failed or ended; called once, never after the caller cancelled. */
  onError: (err: MeshError) => void;
}

interface RawPolicyUpdate {
  revision: number;
  resources: Array<{ kind: string; name: string; version: number; revision: number; json: string }>;
}

/** A PolicyUpdate as decoded by proto-loader, as a PolicySet (each resource's JSON parsed). */
export function policySetFrom(raw: RawPolicyUpdate): PolicySet {
  return {
    revision: Number(raw.revision),
    resources: raw.resources.map((r) => {
      let source: unknown;
      try {
        source = JSON.parse(r.json);
      } catch {
        throw new MeshError('MESH_E_INTERNAL', `policy ${r.kind} ${r.name} arrived with JSON that does not parse`);
      }
      return { kind: r.kind as PolicyKind, name: r.name, version: Number(r.version), revision: Number(r.revision), source };
    }),
  };
}

export interface ClientOptions {
  address: string;
  trustDomain: string;
  bundlePem: string;
  /** The node SVID (chain PEM) and key PEM, for every call but join. */
  node?: { chainPem: string; keyPem: string };
  deadlineMs?: number;
}

interface RawBundle {
  trust_domain: string;
  roots: Buffer[];
  sequence: number;
}

export interface RawSvid {
  spiffe_id: string;
  cert_chain: Buffer[];
  serial: string;
  not_after_ms: number;
  bundle: RawBundle;
}

export function bundleFrom(raw: RawBundle): BundleUpdate {
  return { trustDomain: raw.trust_domain, rootsPem: raw.roots.map((der) => toPem(der)).join(''), sequence: Number(raw.sequence) };
}

/** An SvidResponse as decoded by proto-loader, in the agent's terms. */
export function svidFrom(raw: RawSvid): Svid {
  return {
    spiffeId: raw.spiffe_id,
    chainPem: raw.cert_chain.map((der) => toPem(der)).join(''),
    serial: raw.serial,
    notAfter: Number(raw.not_after_ms),
    bundle: bundleFrom(raw.bundle),
  };
}

export function connectControlPlane(options: ClientOptions): ControlPlaneClient {
  const expected = `URI:spiffe://${options.trustDomain}/mesh/controlplane`;
  const credentials = grpc.credentials.createSsl(
    Buffer.from(options.bundlePem),
    options.node ? Buffer.from(options.node.keyPem) : null,
    options.node ? Buffer.from(options.node.chainPem) : null,
    {
      checkServerIdentity: (_host, cert) => {
        const sans = (cert.subjectaltname ?? '').split(/,\s*/);
        return sans.includes(expected)
          ? undefined
          : new Error(
              `the server at ${options.address} is not the control plane of ${options.trustDomain} (it presented ${cert.subjectaltname ?? 'no SAN'})`,
            );
      },
    },
  );
  const { Identity, Policy, NodeStatus } = contract();
  // The server is checked by its SPIFFE ID above, not by name; a fixed SNI keeps TLS from sending an IP as server name.
  const client = new Identity(options.address, credentials, {
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.ssl_target_name_override': 'mesh-controlplane',
  }) as grpc.Client &
    Record<
      string,
      (
        req: unknown,
        meta: grpc.Metadata,
        opts: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, res: unknown) => void,
      ) => grpc.ClientUnaryCall
    > &
    Record<string, (req: unknown) => grpc.ClientReadableStream<RawBundle>>;

  // Policy.Watch shares the Identity client's channel: one mTLS connection per agent.
  const policy = new Policy(options.address, credentials, { channelOverride: client.getChannel() }) as grpc.Client &
    Record<string, (req: unknown) => grpc.ClientReadableStream<RawPolicyUpdate>>;

  // NodeStatus.Report too: the same connection, authenticated by the same node SVID.
  const nodeStatus = new NodeStatus(options.address, credentials, { channelOverride: client.getChannel() }) as unknown as typeof client;

  const call = <T>(method: string, request: unknown, target = client): Promise<T> =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + (options.deadlineMs ?? 15_000);
      (
        target[method] as (
          req: unknown,
          meta: grpc.Metadata,
          opts: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res: unknown) => void,
        ) => void
      )(request, new grpc.Metadata(), { deadline }, (err, response) =>
        err ? reject(fromServiceError(err, options.address)) : resolve(response as T),
      );
    });

  const needNode = () => {
    if (options.node === undefined) throw new MeshError('MESH_E_NOT_JOINED', 'this call needs the node SVID; run mesh-agent join first');
  };

  return {
    join: async (token, csr) => svidFrom(await call<RawSvid>('Join', { token, csr, features: AGENT_FEATURES })),
    attestKubernetes: async (tokens, csr) => {
      try {
        return svidFrom(await call<RawSvid>('AttestKubernetes', { tokens, csr, features: AGENT_FEATURES }));
      } catch (err) {
        const cause = (err as MeshError).cause as grpc.ServiceError | undefined;
        if (cause?.code === grpc.status.UNIMPLEMENTED)
          throw new MeshError(
            'MESH_E_CONTROLPLANE_UNSUPPORTED',
            `the control plane at ${options.address} does not attest Kubernetes pods`,
            {
              cause: err,
            },
          );
        throw err;
      }
    },
    renewNode: async (csr) => {
      needNode();
      return svidFrom(await call<RawSvid>('RenewNode', { csr }));
    },
    signWorkload: async (spiffeId, csr) => {
      needNode();
      return svidFrom(await call<RawSvid>('SignWorkload', { spiffe_id: spiffeId, csr }));
    },
    getBundle: async () => {
      needNode();
      return bundleFrom(await call<RawBundle>('GetBundle', {}));
    },
    watchBundle(onBundle, onError) {
      needNode();
      const stream = (client.WatchBundle as (req: unknown) => grpc.ClientReadableStream<RawBundle>)({});
      stream.on('data', (raw: RawBundle) => onBundle(bundleFrom(raw)));
      let failed = false;
      stream.on('error', (err: grpc.ServiceError) => {
        failed = true;
        if (err.code !== grpc.status.CANCELLED) onError(fromServiceError(err, options.address));
      });
      // A watch that ends without an error (the control plane stopped) must be reopened too.
      stream.on('end', () => {
        if (!failed) onError(new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', `the bundle watch at ${options.address} ended`));
      });
      return () => stream.cancel();
    },
    watchPolicy(request, { onOpen, onUpdate, onError }) {
      needNode();
      const stream = (policy.Watch as (req: unknown) => grpc.ClientReadableStream<RawPolicyUpdate>)({
        revision: request.revision,
        services: request.services,
        spiffe_ids: request.spiffeIds,
      });
      let failed = false;
      const fail = (err: MeshError) => {
        if (failed) return;
        failed = true;
        onError(err);
      };
      stream.on('metadata', () => {
        if (!failed) onOpen?.();
      });
      stream.on('data', (raw: RawPolicyUpdate) => {
        if (failed) return;
        let set: PolicySet;
        try {
          set = policySetFrom(raw);
        } catch (err) {
          stream.cancel();
          fail(err as MeshError);
          return;
        }
        onUpdate(set);
      });
      // After our own cancel, `failed` is already set and the CANCELLED error is not reported.
      stream.on('error', (err: grpc.ServiceError) => fail(fromServiceError(err, options.address)));
      stream.on('end', () => fail(new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', `the policy watch at ${options.address} ended`)));
      return () => {
        failed = true;
        stream.cancel();
      };
    },
    reportStatus: async (report) => {
      needNode();
      try {
        const answer = await call<{ heartbeat_ms: number }>('Report', report, nodeStatus);
        return { heartbeatMs: Number(answer.heartbeat_ms) };
      } catch (err) {
        const cause = (err as MeshError).cause as grpc.ServiceError | undefined;
        if (cause?.code === grpc.status.UNIMPLEMENTED)
          throw new MeshError('MESH_E_CONTROLPLANE_UNSUPPORTED', `the control plane at ${options.address} does not take status reports`, {
            cause: err,
          });
        throw err;
      }
    },
    close: () => client.close(),
  };
}
