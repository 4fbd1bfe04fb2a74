/**
 * Instances of a mesh service without an agent of their own, for the traffic
 * tests: an HTTPS server in the test process holding an SVID of the service
 * (signed by the real control plane), requiring a client certificate of the
 * mesh, registered straight into Consul with the mesh meta (SPIFFE ID,
 * protocol, mesh port, zone), tags and a TTL check the test can fail. The
 * caller's Envoy is the system under test; these answer as a behaviour says:
 * - `ok`: 200 with { app, peer, path } (peer: the client certificate's URI SAN);
 * - `fail-half`: every other request 503 (the first one fails);
 * - `error`: always 500;
 * - `hold`: never answers until release() (a slow upstream, a full pool).
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ControlPlaneClient } from '../../agent/identity/cp-client.js';
import { freshCsr } from './controlplane.js';

export type Behaviour = 'ok' | 'fail-half' | 'error' | 'hold';

export interface InstanceAnswer {
  app: string;
  peer: string;
  path: string;
}

export interface MeshInstance {
  readonly name: string;
  readonly port: number;
  /** Requests received (answered or not). */
  count(): number;
  /** Requests received and not answered yet. */
  inFlight(): number;
  /** The URI SANs of the client certificates seen, one per request. */
  peers(): string[];
  /** Answers every held request (and later ones) with 200. */
  release(): void;
  close(): Promise<void>;
}

export interface Svid {
  chainPem: string;
  keyPem: string;
  bundlePem: string;
}

/** An SVID for `spiffeId` from the control plane (client: a node allowed to ask for it). */
export async function svidFor(client: ControlPlaneClient, spiffeId: string): Promise<Svid> {
  const { key, csr } = await freshCsr();
  const svid = await client.signWorkload(spiffeId, csr);
  return {
    chainPem: svid.chainPem,
    keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    bundlePem: svid.bundle.rootsPem,
  };
}

function peerUri(socket: TLSSocket): string {
  const san = socket.getPeerCertificate().subjectaltname ?? '';
  return /URI:([^,\s]+)/.exec(san)?.[1] ?? '';
}

export async function startMeshInstance(name: string, svid: Svid, behaviour: Behaviour): Promise<MeshInstance> {
  let count = 0;
  let inFlight = 0;
  let released = false;
  const peers: string[] = [];
  const held: Array<() => void> = [];
  const server = https.createServer(
    { cert: svid.chainPem, key: svid.keyPem, ca: svid.bundlePem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      count++;
      inFlight++;
      res.once('close', () => inFlight--);
      const peer = peerUri(req.socket as TLSSocket);
      peers.push(peer);
      const answer = (status: number) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ app: name, peer, path: req.url ?? '' } satisfies InstanceAnswer));
      };
      req.resume();
      if (behaviour === 'error') answer(500);
      else if (behaviour === 'fail-half') answer(count % 2 === 1 ? 503 : 200);
      else if (behaviour === 'hold' && !released) held.push(() => answer(200));
      else answer(200);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    count: () => count,
    inFlight: () => inFlight,
    peers: () => [...peers],
    release() {
      released = true;
      for (const h of held.splice(0)) h();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Registration {
  id: string;
  service: string;
  port: number;
  spiffeId: string;
  tags?: string[];
  meta?: Record<string, string>;
  zone?: string;
}

async function consulPut(consulAddr: string, apiPath: string, body?: unknown): Promise<void> {
  const res = await fetch(`http://${consulAddr}${apiPath}`, {
    method: 'PUT',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status !== 200) throw new Error(`consul ${apiPath}: HTTP ${res.status}: ${await res.text()}`);
}

/** Registers the instance in Consul with a passing TTL check `check-<id>`; returns its deregistration. */
export async function registerInstance(consulAddr: string, r: Registration): Promise<() => Promise<void>> {
  await consulPut(consulAddr, '/v1/agent/service/register', {
    ID: r.id,
    Name: r.service,
    Address: '127.0.0.1',
    Port: r.port,
    Tags: r.tags ?? [],
    Meta: {
      ...r.meta,
      mesh_spiffe_id: r.spiffeId,
      mesh_protocol: 'http',
      mesh_port: String(r.port),
      ...(r.zone === undefined ? {} : { mesh_zone: r.zone }),
    },
    Check: { CheckID: `check-${r.id}`, Name: `ttl ${r.id}`, TTL: '10m', Status: 'passing' },
  });
  return () => consulPut(consulAddr, `/v1/agent/service/deregister/${encodeURIComponent(r.id)}`);
}

/** Turns the instance's TTL check critical (`fail`: it leaves the healthy view) or passing again. */
export function setInstanceHealth(consulAddr: string, id: string, status: 'fail' | 'pass'): Promise<void> {
  return consulPut(consulAddr, `/v1/agent/check/${status}/${encodeURIComponent(`check-${id}`)}`);
}
