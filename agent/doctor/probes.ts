/**
 * What doctor asks the world, behind small interfaces (the real ones are in
 * probes-real.ts; unit tests pass test/fakes/doctor-probes.ts). Nothing here
 * changes state: files are stat'ed and read, programs are asked their
 * version, sockets are listed, remote APIs are read.
 */
import type { StatusDocument } from '../status/status.js';
import type { RuleInspection } from '../tproxy/apply.js';
import type { IptablesBackend } from '../tproxy/rules.js';
import type { ListeningSocket } from './proc-sockets.js';

export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  isDirectory: boolean;
}

export type RunOutcome = { kind: 'ran'; code: number | null; output: string } | { kind: 'failed'; reason: string };

export interface HostProbe {
  stat(file: string): Promise<FileStat | undefined>;
  /** undefined when the file does not exist; rejects when it cannot be read (EACCES). */
  readText(file: string): Promise<string | undefined>;
  /** Runs a program to completion (a short timeout); `failed` when it cannot start (missing, not executable) or hangs. */
  run(binary: string, args: readonly string[]): Promise<RunOutcome>;
  /** /proc/<pid>/status text; undefined when the process is gone or hidden. */
  procStatus(pid: number | 'self'): Promise<string | undefined>;
}

export interface SocketProbe {
  /** TCP and UDP sockets in LISTEN (or bound, for UDP) state. */
  listening(): Promise<ListeningSocket[]>;
  /** Which process holds each socket inode (those this user may see). */
  owners(inodes: ReadonlySet<string>): Promise<Map<string, { pid: number; name: string }>>;
}

export type HandshakeResult =
  | { ok: true; spiffeId: string; notAfter: number }
  | { ok: false; kind: 'unreachable' | 'identity'; reason: string };

export interface ServerTime {
  /** The control plane's clock, from the mesh-server-time-ms response header. */
  serverMs: number;
  /** Our clock when the call was sent and when the answer arrived. */
  sentMs: number;
  receivedMs: number;
}

export interface ControlPlaneTarget {
  address: string;
  trustDomain: string;
  bundlePem: string;
  node?: { chainPem: string; keyPem: string };
}

export interface ControlPlaneProbe {
  /** A TLS handshake that verifies the server's chain against the bundle and its SPIFFE ID (spiffe://<td>/mesh/controlplane). */
  handshake(target: ControlPlaneTarget): Promise<HandshakeResult>;
  /** One read-only call (Identity.GetBundle); its answer carries the server's time, whatever its status. Undefined: no time header. */
  serverTime(target: ControlPlaneTarget): Promise<ServerTime | undefined>;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface ConsulProbe {
  /** A request to Consul's HTTP API with the agent's token; rejects when Consul does not answer. */
  request(address: string, token: string, method: 'GET' | 'POST', apiPath: string, body?: unknown): Promise<HttpAnswer>;
}

export interface AgentProbe {
  /** GET /status on the agent's status listener; undefined when nothing answers there. */
  status(address: string): Promise<StatusDocument | undefined>;
  /** GET on Envoy's admin API (127.0.0.1:port); rejects when it does not answer. */
  envoyAdmin(port: number, apiPath: string): Promise<HttpAnswer>;
}

export interface CaptureProbe {
  backend(choice: 'auto' | 'nft' | 'legacy'): Promise<IptablesBackend>;
  /** The installed rules against the ones the agent would install now (the `tproxy status` comparison). */
  inspect(backend: IptablesBackend, agentUid: number | undefined): Promise<RuleInspection>;
}

export interface DoctorProbes {
  host: HostProbe;
  sockets: SocketProbe;
  controlPlane: ControlPlaneProbe;
  consul: ConsulProbe;
  agent: AgentProbe;
  capture: CaptureProbe;
}
