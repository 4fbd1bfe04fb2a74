/**
 * One run of a workload's health check, done by the agent itself (catalog
 * mode, where no Consul agent runs the checks). Same meaning as Consul's
 * checks: HTTP 2xx passing, 429 warning, else critical; TCP connect; exec exit
 * 0 passing, 1 warning, else critical; gRPC health protocol SERVING; a TTL
 * check has no one to push it, so it passes while the agent runs.
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { run } from '../../lib/exec.js';
import { httpRequest } from '../../lib/http-request.js';
import type { WorkloadCheck } from './workload.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface CheckResult {
  readonly status: CheckStatus;
  readonly output: string;
}

function splitHostPort(target: string): { host: string; port: number } {
  const at = target.lastIndexOf(':');
  return { host: target.slice(0, at), port: Number(target.slice(at + 1)) };
}

async function httpCheck(url: string, timeoutMs: number): Promise<CheckResult> {
  // node:http, not fetch (lib/http-request.ts says why); the body is not used, so little of it is kept.
  const response = await httpRequest(url, { timeoutMs, maxBodyBytes: 4096 });
  const output = `HTTP GET ${url}: ${response.status}`;
  if (response.status >= 200 && response.status < 300) return { status: 'passing', output };
  return { status: response.status === 429 ? 'warning' : 'critical', output };
}

function tcpCheck(target: string, timeoutMs: number): Promise<CheckResult> {
  const { host, port } = splitHostPort(target);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: CheckResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ status: 'critical', output: `TCP connect ${target}: timeout` }));
    socket.once('connect', () => done({ status: 'passing', output: `TCP connect ${target}: Success` }));
    socket.once('error', (err) => done({ status: 'critical', output: `TCP connect ${target}: ${err.message}` }));
  });
}

async function execCheck(argv: readonly string[], timeoutMs: number): Promise<CheckResult> {
  const [command, ...args] = argv as [string, ...string[]];
  const result = await run(command, args, { timeoutMs });
  const output = `${result.stdout}${result.stderr}`.slice(0, 4096);
  if (result.code === 0) return { status: 'passing', output };
  return { status: result.code === 1 ? 'warning' : 'critical', output: output || `exit ${result.code ?? result.signal}` };
}

/** The gRPC health protocol by hand: the request is {service}, the answer's field 1 is the status (1 = SERVING). */
function grpcCheck(target: string, timeoutMs: number): Promise<CheckResult> {
  const slash = target.indexOf('/');
  const address = slash === -1 ? target : target.slice(0, slash);
  const service = slash === -1 ? '' : target.slice(slash + 1);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const name = Buffer.from(service, 'utf8');
  const request = service === '' ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, name.length]), name]);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + timeoutMs },
      (err, reply) => {
        client.close();
        if (err) return resolve({ status: 'critical', output: `gRPC ${target}: ${err.message}` });
        const serving = reply !== undefined && reply.length >= 2 && reply[0] === 0x08 && reply[1] === 0x01;
        resolve({ status: serving ? 'passing' : 'critical', output: `gRPC ${target}: ${serving ? 'SERVING' : 'NOT_SERVING'}` });
      },
    );
  });
}

export async function runCheck(check: WorkloadCheck): Promise<CheckResult> {
  try {
    switch (check.kind) {
      case 'http':
        return await httpCheck(check.target as string, check.timeoutMs);
      case 'tcp':
        return await tcpCheck(check.target as string, check.timeoutMs);
      case 'exec':
        return await execCheck(check.target as readonly string[], check.timeoutMs);
      case 'grpc':
        return await grpcCheck(check.target as string, check.timeoutMs);
      case 'ttl':
        return { status: 'passing', output: 'TTL check: passing while mesh-agent runs (catalog mode)' };
    }
  } catch (err) {
    return { status: 'critical', output: `${check.kind} check failed: ${(err as Error).message}` };
  }
}
