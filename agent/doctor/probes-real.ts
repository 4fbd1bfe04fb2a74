/** The real probes: the file system, /proc, child programs, the control plane, Consul, the agent and Envoy. */
import { readFile, stat } from 'node:fs/promises';
import { run } from '../../lib/exec.js';
import { type HttpRequestOptions, httpRequest } from '../../lib/http-request.js';
import type { AgentConfig } from '../config/schema.js';
import type { StatusDocument } from '../status/status.js';
import { inspectRules } from '../tproxy/apply.js';
import { buildRuleSet } from '../tproxy/build.js';
import { resolveCaptureFacts } from '../tproxy/facts.js';
import { readProcStatus } from '../tproxy/privileges.js';
import { createIptablesRunner, detectBackend } from '../tproxy/runner-exec.js';
import type { Workload } from '../workloads/workload.js';
import { controlPlaneProbe } from './cp-probe.js';
import type { DoctorProbes, HttpAnswer } from './probes.js';
import { readListeningSockets, socketOwners } from './proc-sockets.js';

const RUN_TIMEOUT_MS = 10_000;
const HTTP_TIMEOUT_MS = 5_000;

/** One request on node:http (lib/http-request.ts): the agent runs with --jitless, so node has no fetch that works (undici's parser is WebAssembly). */
function http(url: string, init: Pick<HttpRequestOptions, 'method' | 'headers' | 'body'> = {}): Promise<HttpAnswer> {
  return httpRequest(url, { ...init, timeoutMs: HTTP_TIMEOUT_MS });
}

export function realProbes(input: { config: AgentConfig; workloads: readonly Workload[]; now: () => number }): DoctorProbes {
  return {
    host: {
      async stat(file) {
        const s = await stat(file).catch(() => undefined);
        return s === undefined ? undefined : { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, isDirectory: s.isDirectory() };
      },
      // Missing is an answer; unreadable (EACCES) is not: the check fails saying so, rather than "not joined".
      readText: (file) =>
        readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
          throw err;
        }),
      async run(binary, args) {
        try {
          const r = await run(binary, args, { timeoutMs: RUN_TIMEOUT_MS });
          return { kind: 'ran', code: r.code, output: `${r.stdout}${r.stderr}` };
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          return { kind: 'failed', reason: e.code ?? e.message };
        }
      },
      procStatus: (pid) => readProcStatus(pid).catch(() => undefined),
    },
    sockets: { listening: () => readListeningSockets(), owners: (inodes) => socketOwners(inodes) },
    controlPlane: controlPlaneProbe(input.now),
    consul: {
      request: (address, token, method, apiPath, body) =>
        http(`http://${address}${apiPath}`, {
          method,
          headers: { ...(token === '' ? {} : { 'X-Consul-Token': token }), 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }),
    },
    agent: {
      async status(address) {
        try {
          const res = await http(`http://${address}/status`);
          return res.status === 200 ? (JSON.parse(res.body) as StatusDocument) : undefined;
        } catch {
          return undefined;
        }
      },
      envoyAdmin: (port, apiPath) => http(`http://127.0.0.1:${port}${apiPath}`),
    },
    capture: {
      backend: (choice) => detectBackend(choice),
      async inspect(backend, agentUid) {
        const host = agentUid === undefined ? {} : { uid: agentUid, gid: agentUid };
        const facts = await resolveCaptureFacts({ config: input.config, workloads: input.workloads, host });
        return inspectRules(createIptablesRunner(backend), buildRuleSet(input.config.transparentProxy, facts));
      },
    },
  };
}
