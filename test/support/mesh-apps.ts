/**
 * Sample applications and probes for data-plane tests: an HTTP app that
 * answers with what it saw (its name and the x-forwarded-client-cert header),
 * and raw probes of a mesh port (plaintext, or TLS with a chosen client
 * certificate) that report how the attempt ended.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';

export interface EchoApp {
  readonly port: number;
  /** Requests received and not answered yet (a `?delay=` request in flight). */
  inFlight(): number;
  close(): Promise<void>;
}

export interface EchoAnswer {
  app: string;
  xfcc: string;
  path: string;
}

export async function startEchoApp(name: string, port = 0): Promise<EchoApp> {
  let inFlight = 0;
  const held: Array<() => void> = [];
  const json = (res: http.ServerResponse, body: unknown) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    // Control paths, answered at once and not counted: how many requests are in flight; answer every held one.
    if (url.pathname === '/in-flight') return json(res, { app: name, inFlight });
    if (url.pathname === '/release') return json(res, { app: name, released: held.splice(0).map((answer) => answer()).length });
    inFlight++;
    res.once('close', () => inFlight--);
    const answer: EchoAnswer = { app: name, xfcc: String(req.headers['x-forwarded-client-cert'] ?? ''), path: req.url ?? '' };
    const send = () => json(res, answer);
    // In-flight requests for drain tests: `/hold` answers at the next `/release`, `?delay=MS` answers late.
    if (url.pathname === '/hold') held.push(send);
    else setTimeout(send, Number(url.searchParams.get('delay') ?? 0));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    inFlight: () => inFlight,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The URI of the peer that x-forwarded-client-cert names (`URI=...`). */
export function xfccUri(xfcc: string): string | undefined {
  return /(?:^|;)URI=([^;,]+)/.exec(xfcc)?.[1];
}

/** GET through a plaintext local port (an outbound listener); throws on failure. */
export async function getJson<T = EchoAnswer>(port: number, path = '/', timeoutMs = 5_000): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET :${port}${path}: HTTP ${res.status}: ${body.slice(0, 300)}`);
  return JSON.parse(body) as T;
}

export type ProbeResult = { ok: true; status: number; body: string } | { ok: false; error: string };

/** A plaintext HTTP request straight to a mesh port: must fail (the listener speaks TLS only). */
export function plaintextProbe(port: number, timeoutMs = 3_000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (r: ProbeResult) => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, error: 'timeout' }));
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
    });
    socket.on('error', (err) => done({ ok: false, error: err.message }));
    socket.on('close', () => {
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      done(match ? { ok: true, status: Number(match[1]), body: data } : { ok: false, error: `closed after ${data.length} bytes` });
    });
  });
}

/** An HTTPS request to a mesh port with a given client certificate (or none). */
export function tlsProbe(
  port: number,
  options: { certPem?: string; keyPem?: string; caPem: string },
  timeoutMs = 3_000,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        method: 'GET',
        timeout: timeoutMs,
        createConnection: () =>
          tls.connect({
            host: '127.0.0.1',
            port,
            ca: options.caPem,
            ...(options.certPem === undefined ? {} : { cert: options.certPem, key: options.keyPem }),
            // The server is checked by chain only here; its SPIFFE ID is not a DNS name.
            checkServerIdentity: () => undefined,
          }),
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ ok: true, status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ ok: false, error: err.message }));
    req.end();
  });
}
