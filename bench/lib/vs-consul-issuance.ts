/**
 * The certificate part of bench/vs-consul.ts: durable issuances per second of
 * our control plane against Consul's built-in CA through its leaf-certificate
 * API, at the same concurrency, on the same machine, each driven by the same
 * Go load generator (test/tools/issuance-load: grpc-go for ours, net/http
 * with --consul-leaf for Consul's). Consul is measured twice: at its default
 * CA rate limit (csr_max_per_second 50) and with the limit off (0), set
 * through /v1/connect/ca/configuration between the two rows.
 *
 * What one issuance is, per system:
 * - ours: the CSR is checked and signed, its row and audit row committed to
 *   SQLite and the WAL synced before the answer (CSRs made beforehand by the
 *   benchmark, as an agent makes them);
 * - Consul's: the client agent makes a key and a CSR and asks a server over
 *   RPC, which checks and signs it and increments the CA's serial number with
 *   a Raft write (in memory on a dev server: no disk sync).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadNodeIdentity } from '../../agent/identity/identity-store.js';
import { newKeyPair } from '../../lib/secret-files.js';
import { createCsr } from '../../lib/x509/csr-builder.js';
import { adminJoinSource, joinNode } from '../../test/support/controlplane.js';
import { cpuMs, startBenchControlPlane } from './issuance-cp.js';
import { controlPlaneServerId, encodeSignWorkload, type IssuanceLoadResult, runConsulLeafLoad, runIssuanceLoad } from './issuance-load.js';
import { formatMarkdownTable } from './table.js';

const TRUST_DOMAIN = 'bench.example';
const ID = `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`;

export interface IssuanceComparison {
  /** Markdown tables, printed and written into bench/README.md. */
  tables: string[];
  /** Ours / Consul's with its limit off (issuances/s). */
  ratio: number;
  /** The target: ours >= Consul's with its limit off. */
  met: boolean;
}

export interface IssuanceComparisonOptions {
  /** host:port of the Consul client agent's HTTP API. */
  consulHttpAddr: string;
  /** Concurrent callers, the same for both systems (default 64). */
  concurrency: number;
  /** The measured period of each row, in seconds. */
  seconds: number;
  log: (line: string) => void;
  /** The Consul processes (client agent, server) whose CPU is counted per issuance. */
  consulPids?: readonly number[];
  /** Registers how to stop what this starts (the control plane), so the caller's cleanup on a signal stops it too. */
  track?: (stop: () => Promise<void>) => () => Promise<void>;
}

interface Row {
  system: string;
  result: IssuanceLoadResult;
  serverCpuMs: number;
}

const rate = (r: IssuanceLoadResult) => r.count / (r.elapsedMs / 1000);

/** The CPU the processes used while fn ran, in ms. */
async function measured(
  pids: readonly number[],
  fn: () => Promise<IssuanceLoadResult>,
): Promise<{ result: IssuanceLoadResult; serverCpuMs: number }> {
  const before = pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const result = await fn();
  return { result, serverCpuMs: pids.reduce((sum, pid) => sum + cpuMs(pid), 0) - before };
}

/** Sets Consul's CA limit of CSRs signed per second (0: off), keeping the rest of its CA configuration. */
export async function setConsulCsrLimit(consulHttpAddr: string, perSecond: number): Promise<void> {
  const url = `http://${consulHttpAddr}/v1/connect/ca/configuration`;
  const current = (await (await fetch(url)).json()) as { Provider: string; Config: Record<string, unknown> };
  const put = await fetch(url, {
    method: 'PUT',
    body: JSON.stringify({ Provider: current.Provider, Config: { ...current.Config, CSRMaxPerSecond: perSecond } }),
  });
  if (put.status !== 200) throw new Error(`PUT ${url}: HTTP ${put.status}: ${await put.text()}`);
  const after = (await (await fetch(url)).json()) as { Config: { CSRMaxPerSecond?: number } };
  if (after.Config.CSRMaxPerSecond !== perSecond)
    throw new Error(`Consul's CA configuration did not take CSRMaxPerSecond ${perSecond}: ${JSON.stringify(after.Config)}`);
}

/** Our control plane against Consul's leaf API; see the file comment. */
export async function compareIssuance(o: IssuanceComparisonOptions): Promise<IssuanceComparison> {
  const durationMs = o.seconds * 1000;
  const load = { concurrency: o.concurrency };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-vs-consul-ca-'));
  const rows: Row[] = [];
  o.log('certificates: starting our control plane');
  const cp = await startBenchControlPlane(dir, { trustDomain: TRUST_DOMAIN });
  const stopCp = o.track?.(() => cp.stop()) ?? (() => cp.stop());
  try {
    const agentDir = path.join(dir, 'agent');
    await joinNode(
      adminJoinSource({ address: cp.address, dataDir: path.join(dir, 'cp'), trustDomain: TRUST_DOMAIN }),
      'bench',
      [ID],
      agentDir,
    );
    const identity = await loadNodeIdentity(agentDir);
    o.log('certificates: making 512 CSRs');
    const csrs = await Promise.all(
      Array.from({ length: 512 }, () => {
        const key = newKeyPair();
        return createCsr(key.privateKey, key.publicKey);
      }),
    );
    const ours = (warmupMs: number) =>
      runIssuanceLoad({
        address: cp.address,
        serverId: controlPlaneServerId(TRUST_DOMAIN),
        bundlePem: identity.bundlePem,
        node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
        requests: csrs.map((csr) => encodeSignWorkload(ID, csr)),
        load,
        durationMs,
        warmupMs,
      });
    o.log(`certificates: ours, ${o.concurrency} concurrent for ${o.seconds} s (after a 2 s warm-up)`);
    rows.push({ system: 'ours (mesh-controlplane, SignWorkload over mTLS gRPC)', ...(await measured([cp.pid], () => ours(2_000))) });
  } finally {
    await stopCp();
    await rm(dir, { recursive: true, force: true });
  }

  const consulPids = o.consulPids ?? [];
  const consul = (prefix: string) =>
    runConsulLeafLoad({ baseUrl: `http://${o.consulHttpAddr}`, prefix, load, durationMs, warmupMs: 1_000 });
  o.log(`certificates: Consul at its default CA limit, ${o.concurrency} concurrent for ${o.seconds} s`);
  await setConsulCsrLimit(o.consulHttpAddr, 50);
  rows.push({
    system: 'Consul, default limit (csr_max_per_second 50)',
    ...(await measured(consulPids, () => consul('bench-leaf-limited'))),
  });
  o.log(`certificates: Consul with the CA limit off, ${o.concurrency} concurrent for ${o.seconds} s`);
  await setConsulCsrLimit(o.consulHttpAddr, 0);
  rows.push({ system: 'Consul, limit off (csr_max_per_second 0)', ...(await measured(consulPids, () => consul('bench-leaf-unlimited'))) });

  const [ourRow, , offRow] = rows as [Row, Row, Row];
  const ratio = rate(ourRow.result) / Math.max(1e-9, rate(offRow.result));
  const table = formatMarkdownTable(
    [
      'system',
      'issued',
      'issuances/s',
      'p50 ms',
      'p99 ms',
      'failed calls',
      'server CPU ms/issuance',
      'load generator CPU ms/call',
      'ours / this',
    ],
    rows.map((r) => [
      r.system,
      r.result.count,
      rate(r.result),
      r.result.p50Ms,
      r.result.p99Ms,
      r.result.errors,
      consulPids.length === 0 && r !== ourRow ? '-' : r.serverCpuMs / Math.max(1, r.result.count),
      r.result.cpuMs / Math.max(1, r.result.count + r.result.errors),
      r === ourRow ? '-' : `${(rate(ourRow.result) / Math.max(1e-9, rate(r.result))).toFixed(2)}x`,
    ]),
  );
  const firstErrors = rows.filter((r) => r.result.firstError !== null).map((r) => `${r.system}: ${r.result.firstError}`);
  const notes = [
    `Certificates: ${o.concurrency} concurrent callers per row, ${o.seconds} s measured; a failed call (Consul's limit answers HTTP 429) is not an issuance.`,
    ...firstErrors.map((e) => `First failure, ${e}`),
  ].join('\n');
  return { tables: [`${table}\n\n${notes}`], ratio, met: ratio >= 1 };
}
