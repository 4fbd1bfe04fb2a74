/**
 * The control plane's metrics listener (`metrics.listen`): GET /metrics
 * answers the registry in the Prometheus text format; anything else is 404.
 * Plain HTTP with no authentication: bind it where only Prometheus reaches it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshError } from '../../lib/errors.js';
import type { ControlPlaneMetrics } from './controlplane-metrics.js';

export interface MetricsServer {
  /** host:port actually bound (port 0 picks a free one). */
  readonly address: string;
  close(): Promise<void>;
}

export async function startMetricsServer(listen: string, metrics: ControlPlaneMetrics): Promise<MetricsServer> {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(at + 1));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://metrics');
    if (req.method !== 'GET' || url.pathname !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found; try GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`metrics failed: ${(err as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new MeshError('MESH_E_CONFIG_INVALID', `metrics.listen ${listen}: cannot listen: ${err.message}`, {
          cause: err,
          details: { path: 'metrics.listen' },
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
