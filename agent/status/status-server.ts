/**
 * The status endpoint on status.listen: GET /status answers the status
 * document as JSON; GET /status/xds (when given) its xds section alone, as
 * {"xds": ...}, built without the rest (the benchmarks read it after every
 * change; the whole document with 200 upstreams is about 400 KB of garbage a
 * read); GET /metrics (when given) the Prometheus text of metrics-endpoint.ts;
 * anything else is 404.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshError } from '../../lib/errors.js';
import type { MetricsResponse } from './metrics-endpoint.js';

export interface StatusServer {
  /** host:port actually bound (port 0 picks a free one). */
  readonly address: string;
  close(): Promise<void>;
}

export interface StatusRoutes {
  /** GET /metrics. */
  metrics?: () => Promise<MetricsResponse>;
  /** GET /status/xds: the status document's xds section alone. */
  xds?: () => unknown;
}

export async function startStatusServer(listen: string, snapshot: () => unknown, routes: StatusRoutes = {}): Promise<StatusServer> {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at);
  const port = Number(listen.slice(at + 1));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://status');
    if (req.method === 'GET' && url.pathname === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(snapshot(), null, 2)}\n`);
      return;
    }
    const xds = routes.xds;
    if (req.method === 'GET' && url.pathname === '/status/xds' && xds !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(xds(), null, 2)}\n`);
      return;
    }
    const metrics = routes.metrics;
    if (req.method === 'GET' && url.pathname === '/metrics' && metrics !== undefined) {
      metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType });
          res.end(m.body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics failed: ${(err as Error).message}\n`);
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found; try GET /status"}\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new MeshError('MESH_E_CONFIG_INVALID', `status.listen ${listen}: cannot listen: ${err.message}`, { cause: err })),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
