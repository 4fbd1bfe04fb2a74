/**
 * A real Envoy started from a bootstrap object: bootstrap written to a temp
 * folder, admin address read from --admin-address-path (so admin can listen on
 * port 0), ready when admin /ready says LIVE. Several run at once
 * (--use-dynamic-base-id).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { startChild } from './child.js';
import { tools } from './tools.js';
import { httpGet, waitFor } from './wait.js';

export interface EnvoyProcess {
  readonly pid: number;
  /** http://127.0.0.1:<port> of the admin API. */
  readonly adminUrl: string;
  readonly dir: string;
  admin(apiPath: string): Promise<string>;
  configDump(): Promise<{ configs: Array<Record<string, unknown> & { '@type': string }> }>;
  /** /clusters?format=json */
  clusters(): Promise<{ cluster_statuses?: Array<Record<string, unknown>> }>;
  /** /stats as a name -> value map (counters and gauges). */
  stats(): Promise<Map<string, number>>;
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

export interface EnvoyOptions {
  bootstrap: Record<string, unknown>;
  logLevel?: 'trace' | 'debug' | 'info' | 'warning' | 'error';
  readyTimeoutMs?: number;
  /** Wait for /ready to say LIVE (default); false returns once admin answers at all. */
  waitLive?: boolean;
}

export function parseStats(text: string): Map<string, number> {
  const stats = new Map<string, number>();
  for (const line of text.split('\n')) {
    // Names may contain ':' (clusters named outbound:<service>); the value is after the last ': '.
    const match = /^(\S+): (\d+)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) stats.set(match[1], Number(match[2]));
  }
  return stats;
}

export async function startEnvoy(options: EnvoyOptions): Promise<EnvoyProcess> {
  const { envoy } = await tools();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-envoy-'));
  const bootstrapFile = path.join(dir, 'bootstrap.json');
  const adminFile = path.join(dir, 'admin-address.txt');
  await writeFile(bootstrapFile, JSON.stringify(options.bootstrap, null, 2));
  const child = startChild(envoy.path, [
    '-c',
    bootstrapFile,
    '--admin-address-path',
    adminFile,
    '--use-dynamic-base-id',
    '--concurrency',
    '1',
    '--log-level',
    options.logLevel ?? 'warning',
  ]);

  const stop = async () => {
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  };

  let adminUrl = '';
  try {
    const address = await waitFor(
      async () => {
        if (child.exited()) throw new MeshError('MESH_E_PROCESS_START', 'envoy exited');
        const text = await readFile(adminFile, 'utf8').catch(() => '');
        return text.trim() === '' ? undefined : text.trim();
      },
      {
        timeoutMs: options.readyTimeoutMs ?? 20_000,
        fatal: () => (child.exited() ? 'envoy exited' : undefined),
        what: 'envoy to write its admin address',
      },
    );
    adminUrl = `http://${address}`;
    await waitFor(
      async () => {
        if (child.exited()) throw new MeshError('MESH_E_PROCESS_START', 'envoy exited');
        const { status, body } = await httpGet(`${adminUrl}/ready`);
        if (options.waitLive === false) return true;
        return status === 200 && body.trim() === 'LIVE' ? true : undefined;
      },
      {
        timeoutMs: options.readyTimeoutMs ?? 20_000,
        fatal: () => (child.exited() ? 'envoy exited' : undefined),
        what: 'envoy /ready to say LIVE',
      },
    );
  } catch (err) {
    const output = child.output();
    await stop();
    throw new MeshError('MESH_E_PROCESS_START', `envoy did not become ready: ${(err as Error).message}\n${output.slice(-3000)}`, {
      cause: err,
    });
  }

  const admin = async (apiPath: string) => {
    const { status, body } = await httpGet(`${adminUrl}${apiPath}`);
    if (status !== 200) throw new Error(`envoy admin ${apiPath}: HTTP ${status}: ${body}`);
    return body;
  };

  return {
    pid: child.pid,
    adminUrl,
    dir,
    admin,
    configDump: async () => JSON.parse(await admin('/config_dump')),
    clusters: async () => JSON.parse(await admin('/clusters?format=json')),
    stats: async () => parseStats(await admin('/stats')),
    output: () => child.output(),
    exited: () => child.exited(),
    stop,
  };
}
