/**
 * A real Zipkin server per test (the exec jar provisioned from Maven Central by
 * scripts/provision-zipkin.ts, run on the machine's Java): in-memory storage,
 * bound to 127.0.0.1 on a free port, ready once GET /health says UP. Spans
 * are read back through its v2 API.
 */
import { type ManagedChild, startChild } from './child.js';
import { freePorts } from './ports.js';
import { zipkin } from './tools.js';
import { httpGet, waitFor } from './wait.js';

/** A span as Zipkin's v2 API returns it (the fields the tests read). */
export interface ZipkinSpan {
  readonly traceId: string;
  readonly id: string;
  readonly parentId?: string;
  readonly name?: string;
  readonly kind?: 'CLIENT' | 'SERVER' | 'PRODUCER' | 'CONSUMER';
  readonly localEndpoint?: { readonly serviceName?: string; readonly ipv4?: string; readonly port?: number };
  readonly tags?: Readonly<Record<string, string>>;
  readonly duration?: number;
}

export interface ZipkinServer {
  /** host:port, as agent config `tracing.address` takes it. */
  readonly address: string;
  readonly url: string;
  readonly pid: number;
  /** GET /api/v2/trace/<id>: the trace's spans, [] while Zipkin has none of it. */
  trace(traceId: string): Promise<ZipkinSpan[]>;
  /** GET /api/v2/services. */
  services(): Promise<string[]>;
  output(): string;
  stop(): Promise<void>;
}

export async function startZipkin(options: { readyTimeoutMs?: number } = {}): Promise<ZipkinServer> {
  const jar = await zipkin();
  const [port] = (await freePorts(1)) as [number];
  const child: ManagedChild = startChild('java', [
    '-Xms64m',
    '-Xmx256m',
    '-XX:TieredStopAtLevel=1',
    '-jar',
    jar.path,
    '--armeria.ports[0].ip=127.0.0.1',
    `--armeria.ports[0].port=${port}`,
    '--logging.level.root=WARN',
  ]);
  const url = `http://127.0.0.1:${port}`;
  const json = async <T>(apiPath: string): Promise<{ status: number; value?: T }> => {
    const { status, body } = await httpGet(`${url}${apiPath}`);
    return status === 200 ? { status, value: JSON.parse(body) as T } : { status };
  };
  try {
    await waitFor(
      async () => {
        const health = await json<{ status?: string }>('/health').catch(() => undefined);
        return health?.value?.status === 'UP' ? true : undefined;
      },
      {
        timeoutMs: options.readyTimeoutMs ?? 120_000,
        intervalMs: 250,
        what: `zipkin healthy on ${url}`,
        fatal: () => (child.exited() ? `zipkin exited:\n${child.output()}` : undefined),
      },
    );
  } catch (err) {
    await child.stop();
    throw err;
  }
  return {
    address: `127.0.0.1:${port}`,
    url,
    pid: child.pid,
    async trace(traceId) {
      const r = await json<ZipkinSpan[]>(`/api/v2/trace/${traceId}`);
      if (r.status === 404) return [];
      if (r.value === undefined) throw new Error(`zipkin /api/v2/trace/${traceId}: HTTP ${r.status}`);
      return r.value;
    },
    async services() {
      return (await json<string[]>('/api/v2/services')).value ?? [];
    },
    output: () => child.output(),
    stop: () => child.stop(),
  };
}
