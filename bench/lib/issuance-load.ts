/**
 * Drives test/tools/issuance-load, the grpc-go load generator of the CA
 * benchmark, so that the load on the control plane is made by a lean client
 * outside this Node process (like wrk or ghz for HTTP). Requests are encoded
 * here with the same proto-loader codec the agent's client uses; the tool
 * sends them as opaque bytes, round-robin, and prints one JSON result.
 * Not a benchmark by itself: bench/ca-issuance.ts uses it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type RawSvid, type Svid, svidFrom } from '../../agent/identity/cp-client.js';
import { ServerIdentity } from '../../controlplane/api/server-identity.js';
import { MeshError } from '../../lib/errors.js';
import { run } from '../../lib/exec.js';
import { contract } from '../../lib/proto/contract.js';
import { tools } from '../../test/support/tools.js';

export interface IssuanceLoadOptions {
  /** The tool; default: the provisioned one (tools().issuanceLoad). */
  binary?: string;
  /** HOST:PORT of the control plane's Identity API. */
  address: string;
  /** The URI SAN the server certificate must carry; see controlPlaneServerId. */
  serverId: string;
  /** Root certificates (PEM) the server certificate must chain to. */
  bundlePem: string;
  /** The client's node SVID (chain, leaf first) and key, PEM. */
  node: { chainPem: string; keyPem: string };
  /** Default: SIGN_WORKLOAD_METHOD. */
  method?: string;
  /** Encoded request messages (e.g. encodeSignWorkload), used round-robin. */
  requests: readonly Uint8Array[];
  /** A closed loop of N concurrent callers, or an open loop of R calls/s. */
  load: { concurrency: number } | { rate: number };
  /** gRPC connections (the tool's default: 8). */
  conns?: number;
  /** The measured period; default 5,000 ms. */
  durationMs?: number;
  /** The closed-loop warm-up, discarded; default 1,000 ms (0: none). */
  warmupMs?: number;
  /** Return the first successful responses (up to 20) as `samples`. */
  samples?: boolean;
  /** Kill the tool after this long; default duration + warm-up + 60 s. */
  timeoutMs?: number;
}

/** What the tool prints; latencies in ms, from the measured period only. */
export interface IssuanceLoadResult {
  /** Successful calls. */
  count: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  /** Nearest-rank percentiles of the successful calls (0 when there are none). */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** User + system CPU the tool itself used while measuring. */
  cpuMs: number;
}

const RESULT_FIELDS = ['count', 'errors', 'elapsedMs', 'p50Ms', 'p99Ms', 'maxMs', 'cpuMs'] as const;

const identityMethod = (name: string) => {
  const method = contract().Identity.service[name];
  if (method === undefined) throw new MeshError('MESH_E_INTERNAL', `the Identity service has no method ${name}`);
  return method;
};

/** The full name of Identity.SignWorkload, as --method wants it. */
export const SIGN_WORKLOAD_METHOD = '/mesh.controlplane.v1.Identity/SignWorkload';

/** The SPIFFE ID of the control plane's server certificate in a trust domain. */
export function controlPlaneServerId(trustDomain: string): string {
  return ServerIdentity.spiffeId(trustDomain);
}

/** A SignWorkloadRequest { spiffe_id, csr } in protobuf bytes. */
export function encodeSignWorkload(spiffeId: string, csr: Uint8Array): Buffer {
  return identityMethod('SignWorkload').requestSerialize({ spiffe_id: spiffeId, csr: Buffer.from(csr) });
}

/** An SvidResponse in protobuf bytes, decoded as the agent's client sees it. */
export function decodeSvidResponse(bytes: Uint8Array): Svid {
  return svidFrom(identityMethod('SignWorkload').responseDeserialize(Buffer.from(bytes)) as RawSvid);
}

/** Messages each prefixed by its length (4 bytes, big-endian): the tool's --requests and --sample-out format. */
function frameMessages(messages: readonly Uint8Array[]): Buffer {
  return Buffer.concat(
    messages.flatMap((m) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(m.length);
      return [length, m];
    }),
  );
}

function unframeMessages(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; ) {
    if (data.length - off < 4) throw new MeshError('MESH_E_INTERNAL', `a length prefix is cut short at byte ${off}`);
    const length = data.readUInt32BE(off);
    off += 4;
    if (data.length - off < length) throw new MeshError('MESH_E_INTERNAL', `message ${out.length + 1} is cut short`);
    out.push(data.subarray(off, off + length));
    off += length;
  }
  return out;
}

function parseResult(stdout: string): IssuanceLoadResult {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (err) {
    throw new MeshError('MESH_E_INTERNAL', `issuance-load printed no JSON: ${JSON.stringify(stdout.slice(0, 500))}`, { cause: err });
  }
  const result = value as Record<string, unknown>;
  const bad = RESULT_FIELDS.filter((f) => typeof result[f] !== 'number');
  if (bad.length > 0 || (result.firstError !== null && typeof result.firstError !== 'string')) {
    throw new MeshError('MESH_E_INTERNAL', `issuance-load printed an unexpected result: ${stdout.trim()}`);
  }
  return result as unknown as IssuanceLoadResult;
}

/** Runs the tool and parses its result; rejects with its stderr when it exits non-zero. */
async function runTool(binary: string, args: string[], timeoutMs: number, what: string): Promise<IssuanceLoadResult> {
  const result = await run(binary, args, { timeoutMs });
  if (result.code !== 0) {
    const why = result.signal !== null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw new MeshError('MESH_E_INTERNAL', `${what} ${why}: ${result.stderr.trim()}`, {
      details: { exitCode: result.code, stderr: result.stderr },
    });
  }
  return parseResult(result.stdout);
}

/** The flags of the load's shape and length, common to both modes. */
function loadArgs(options: Pick<IssuanceLoadOptions, 'load' | 'durationMs' | 'warmupMs'>): string[] {
  const shape = 'concurrency' in options.load ? ['--concurrency', `${options.load.concurrency}`] : ['--rate', `${options.load.rate}`];
  return ['--duration', `${options.durationMs ?? 5_000}ms`, '--warmup', `${options.warmupMs ?? 1_000}ms`, ...shape];
}

/** The tool's flags for the given options and input files. */
export function issuanceLoadArgs(
  options: IssuanceLoadOptions,
  files: { ca: string; cert: string; key: string; requests: string; samples?: string },
): string[] {
  const args = [
    '--addr',
    options.address,
    '--ca',
    files.ca,
    '--cert',
    files.cert,
    '--key',
    files.key,
    '--server-id',
    options.serverId,
    '--method',
    options.method ?? SIGN_WORKLOAD_METHOD,
    '--requests',
    files.requests,
    ...loadArgs(options),
  ];
  if (options.conns !== undefined) args.push('--conns', `${options.conns}`);
  if (files.samples !== undefined) args.push('--sample-out', files.samples);
  return args;
}

/**
 * Runs the tool once. Resolves with its result (and the sampled responses when
 * asked); rejects with the tool's stderr when it exits non-zero.
 */
export async function runIssuanceLoad(options: IssuanceLoadOptions): Promise<IssuanceLoadResult & { samples: Buffer[] }> {
  const binary = options.binary ?? (await tools()).issuanceLoad.path;
  // mkdtemp makes a 0700 folder; the node key is written 0600 in it and removed afterwards.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-issuance-load-'));
  try {
    const files = {
      ca: path.join(dir, 'bundle.pem'),
      cert: path.join(dir, 'node.pem'),
      key: path.join(dir, 'node.key'),
      requests: path.join(dir, 'requests.bin'),
      ...(options.samples ? { samples: path.join(dir, 'samples.bin') } : {}),
    };
    await writeFile(files.ca, options.bundlePem);
    await writeFile(files.cert, options.node.chainPem);
    await writeFile(files.key, options.node.keyPem, { mode: 0o600 });
    await writeFile(files.requests, frameMessages(options.requests));
    const timeoutMs = options.timeoutMs ?? (options.durationMs ?? 5_000) + (options.warmupMs ?? 1_000) + 60_000;
    const parsed = await runTool(binary, issuanceLoadArgs(options, files), timeoutMs, 'issuance-load');
    const samples = files.samples === undefined ? [] : unframeMessages(await readFile(files.samples));
    return { ...parsed, samples };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ConsulLeafLoadOptions {
  /** The tool; default: the provisioned one (tools().issuanceLoad). */
  binary?: string;
  /** http://HOST:PORT of the Consul agent whose leaf-certificate API is driven. */
  baseUrl: string;
  /** Service names are <prefix>-<n>, new for every call (a repeated one is answered from the agent's cache). */
  prefix: string;
  load: { concurrency: number } | { rate: number };
  /** The measured period; default 5,000 ms. */
  durationMs?: number;
  /** The closed-loop warm-up, discarded; default 1,000 ms (0: none). */
  warmupMs?: number;
}

/** The tool's flags for its --consul-leaf mode. */
export function consulLeafLoadArgs(options: ConsulLeafLoadOptions): string[] {
  return ['--consul-leaf', options.baseUrl, '--leaf-prefix', options.prefix, ...loadArgs(options)];
}

/**
 * Runs the tool once against Consul's leaf-certificate API
 * (/v1/agent/connect/ca/leaf/<name>); a call counts when Consul answers 200
 * with a certificate for that name. Rejects with the tool's stderr when it
 * exits non-zero.
 */
export async function runConsulLeafLoad(options: ConsulLeafLoadOptions): Promise<IssuanceLoadResult> {
  const binary = options.binary ?? (await tools()).issuanceLoad.path;
  const timeoutMs = (options.durationMs ?? 5_000) + (options.warmupMs ?? 1_000) + 60_000;
  return runTool(binary, consulLeafLoadArgs(options), timeoutMs, 'issuance-load --consul-leaf');
}
