/**
 * FakeDoctorProbes: the shared fake of doctor's probes (agent/doctor/probes.ts).
 * Every answer is a plain field a test sets; the defaults describe a healthy
 * host (Envoy 1.40.0, no sockets, files with the right modes, a reachable
 * control plane in step with our clock, Consul allowing everything, Envoy LIVE,
 * no drift). `calls` records what was asked.
 */

import type { DoctorProbes, FileStat, HandshakeResult, HttpAnswer, RunOutcome, ServerTime } from '../../agent/doctor/probes.js';
import type { ListeningSocket } from '../../agent/doctor/proc-sockets.js';
import type { StatusDocument } from '../../agent/status/status.js';
import type { RuleInspection } from '../../agent/tproxy/apply.js';
import type { IptablesBackend } from '../../agent/tproxy/rules.js';

export class FakeDoctorProbes implements DoctorProbes {
  calls: string[] = [];
  files = new Map<string, string>();
  stats = new Map<string, FileStat>();
  envoyRun: RunOutcome = { kind: 'ran', code: 0, output: 'envoy  version: 0123abcd/1.40.0/Clean/RELEASE/BoringSSL\n' };
  procStatuses = new Map<number | 'self', string>();
  sockets_: ListeningSocket[] = [];
  socketOwners = new Map<string, { pid: number; name: string }>();
  handshakeResult: HandshakeResult = { ok: true, spiffeId: 'spiffe://example.org/mesh/controlplane', notAfter: Date.UTC(2030, 0, 1) };
  time: ServerTime | undefined = { serverMs: 1_000_000, sentMs: 1_000_000, receivedMs: 1_000_010 };
  consulAnswers = new Map<string, HttpAnswer | Error>([['GET /v1/status/leader', { status: 200, body: '"127.0.0.1:8300"' }]]);
  agentStatus: StatusDocument | undefined;
  envoyAdminAnswer: HttpAnswer | Error = { status: 200, body: '{"state":"LIVE"}' };
  backendResult: IptablesBackend | Error = 'nft';
  inspection: RuleInspection = { expected: 10, installed: 10, missing: [], unexpected: [] };

  host = {
    stat: async (file: string) => this.stats.get(file),
    readText: async (file: string) => this.files.get(file),
    run: async (binary: string, args: readonly string[]) => {
      this.calls.push(`run ${binary} ${args.join(' ')}`);
      return this.envoyRun;
    },
    procStatus: async (pid: number | 'self') => this.procStatuses.get(pid),
  };

  sockets = {
    listening: async () => this.sockets_,
    owners: async (inodes: ReadonlySet<string>) => new Map([...this.socketOwners].filter(([inode]) => inodes.has(inode))),
  };

  controlPlane = {
    handshake: async () => this.handshakeResult,
    serverTime: async () => this.time,
  };

  consul = {
    request: async (_address: string, _token: string, method: 'GET' | 'POST', apiPath: string, body?: unknown): Promise<HttpAnswer> => {
      this.calls.push(`consul ${method} ${apiPath}`);
      const answer = this.consulAnswers.get(`${method} ${apiPath}`);
      if (answer instanceof Error) throw answer;
      if (answer !== undefined) return answer;
      if (apiPath === '/v1/internal/acl/authorize')
        return { status: 200, body: JSON.stringify((body as object[]).map((r) => ({ ...r, Allow: true }))) };
      return { status: 404, body: 'not found' };
    },
  };

  agent = {
    status: async () => this.agentStatus,
    envoyAdmin: async (_port: number, apiPath: string) => {
      this.calls.push(`envoy ${apiPath}`);
      if (this.envoyAdminAnswer instanceof Error) throw this.envoyAdminAnswer;
      return this.envoyAdminAnswer;
    },
  };

  capture = {
    backend: async () => {
      if (this.backendResult instanceof Error) throw this.backendResult;
      return this.backendResult;
    },
    inspect: async () => this.inspection,
  };
}
