/**
 * A small HTTP/1.1 client on node:http with one keep-alive agent per caller.
 * Used for Consul instead of fetch: the agent keeps one blocking query open
 * per upstream, and node:http's native parser costs about half the memory of
 * fetch's per connection (bench/xds measures the agent's RSS with 200).
 */
import http from 'node:http';

export interface HttpAnswer {
  readonly status: number;
  readonly ok: boolean;
  readonly text: string;
  header(name: string): string | undefined;
}

export interface HttpRequestOptions {
  method: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

export function createHttpClient(base: string): { request(path: string, options: HttpRequestOptions): Promise<HttpAnswer> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 32 });
  const url = new URL(base);
  return {
    request(path, options) {
      return new Promise<HttpAnswer>((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host: url.hostname,
            port: url.port,
            path,
            method: options.method,
            headers: {
              ...options.headers,
              ...(options.body === undefined
                ? {}
                : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(options.body) }),
            },
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
              const status = res.statusCode ?? 0;
              resolve({
                status,
                ok: status >= 200 && status < 300,
                text: Buffer.concat(chunks).toString('utf8'),
                header: (name) => {
                  const v = res.headers[name.toLowerCase()];
                  return Array.isArray(v) ? v[0] : v;
                },
              });
            });
          },
        );
        req.on('error', reject);
        req.end(options.body);
      });
    },
  };
}
