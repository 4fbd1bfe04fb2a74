import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { HttpRequestError, httpRequest } from '../../lib/http-request.js';

async function serve(t: Test, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('GET and POST: status and body', async (t) => {
  const seen: string[] = [];
  const base = await serve(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(req.method === 'POST' ? 201 : 200);
    res.end(`body of ${req.url}`);
  });
  t.same(await httpRequest(`${base}/a?x=1`, { timeoutMs: 2000 }), { status: 200, body: 'body of /a?x=1' });
  t.same(await httpRequest(`${base}/b`, { method: 'POST', timeoutMs: 2000 }), { status: 201, body: 'body of /b' });
  t.same(seen, ['GET /a?x=1', 'POST /b']);
});

t.test('redirects are followed (303 turns into GET), up to the limit; 0 turns following off', async (t) => {
  const base = await serve(t, (req, res) => {
    const n = Number(req.url?.slice(1));
    if (req.url === '/see-other') {
      res.writeHead(303, { location: '/0' });
      return res.end();
    }
    if (n > 0) {
      res.writeHead(302, { location: `/${n - 1}` });
      return res.end();
    }
    res.writeHead(200);
    res.end(`${req.method} at the end`);
  });
  t.same(await httpRequest(`${base}/3`, { timeoutMs: 2000 }), { status: 200, body: 'GET at the end' });
  t.same(await httpRequest(`${base}/see-other`, { method: 'POST', timeoutMs: 2000 }), { status: 200, body: 'GET at the end' });
  t.equal((await httpRequest(`${base}/3`, { timeoutMs: 2000, maxRedirects: 0 })).status, 302);
  await t.rejects(httpRequest(`${base}/12`, { timeoutMs: 2000 }), { code: 'MESH_E_HTTP_REDIRECTS', message: /more than 10 redirects/ });
});

t.test('headers and a body are sent; a 307 keeps the POST and its body, a 303 turns it into a GET without one', async (t) => {
  const seen: Array<{ line: string; token?: string; type?: string; length?: string; body: string }> = [];
  const base = await serve(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      seen.push({
        line: `${req.method} ${req.url}`,
        token: req.headers['x-consul-token'] as string | undefined,
        type: req.headers['content-type'],
        length: req.headers['content-length'],
        body,
      });
      if (req.url === '/temporary') res.writeHead(307, { location: '/echo' });
      else if (req.url === '/see-other') res.writeHead(303, { location: '/echo' });
      else res.writeHead(200);
      res.end(req.url === '/echo' ? `${req.method} ${body}` : '');
    });
  });
  const post = {
    method: 'POST' as const,
    timeoutMs: 2000,
    headers: { 'X-Consul-Token': 's3cr3t', 'content-type': 'application/json' },
    body: '{"ü":1}',
  };
  t.same(await httpRequest(`${base}/echo`, post), { status: 200, body: 'POST {"ü":1}' });
  t.same(await httpRequest(`${base}/temporary`, post), { status: 200, body: 'POST {"ü":1}' });
  t.same(await httpRequest(`${base}/see-other`, post), { status: 200, body: 'GET ' });
  t.same(
    seen.map((s) => [s.line, s.token, s.type, s.length, s.body]),
    [
      ['POST /echo', 's3cr3t', 'application/json', '8', '{"ü":1}'],
      ['POST /temporary', 's3cr3t', 'application/json', '8', '{"ü":1}'],
      ['POST /echo', 's3cr3t', 'application/json', '8', '{"ü":1}'],
      ['POST /see-other', 's3cr3t', 'application/json', '8', '{"ü":1}'],
      ['GET /echo', 's3cr3t', 'application/json', undefined, ''],
    ],
    'the token and content type on every hop; the body (8 bytes of UTF-8: ü is two) and its length until the 303',
  );
});

t.test("a redirect to another origin gets none of the caller's headers (the token stays with its server)", async (t) => {
  const tokens: Array<string | undefined> = [];
  const other = await serve(t, (req, res) => {
    tokens.push(req.headers['x-consul-token'] as string | undefined);
    res.writeHead(200);
    res.end('elsewhere');
  });
  const base = await serve(t, (req, res) => {
    tokens.push(req.headers['x-consul-token'] as string | undefined);
    res.writeHead(302, { location: req.url === '/away' ? `${other}/x` : '/away' });
    res.end();
  });
  const answer = await httpRequest(`${base}/start`, { timeoutMs: 2000, headers: { 'X-Consul-Token': 's3cr3t' } });
  t.same(answer, { status: 200, body: 'elsewhere' });
  t.same(tokens, ['s3cr3t', 's3cr3t', undefined], 'sent on the same-origin hop, not to the other origin');
});

t.test('the body is cut at maxBodyBytes', async (t) => {
  const base = await serve(t, (_req, res) => {
    res.writeHead(200);
    res.end('x'.repeat(100_000));
  });
  const answer = await httpRequest(base, { timeoutMs: 2000, maxBodyBytes: 10 });
  t.same(answer, { status: 200, body: 'x'.repeat(10) });
});

t.test('a server that never answers: the deadline covers the whole request', async (t) => {
  const base = await serve(t, (_req, res) => {
    res.writeHead(200);
    res.write('partial');
  });
  const err = await httpRequest(base, { timeoutMs: 100 }).catch((e: unknown) => e);
  t.ok(err instanceof HttpRequestError);
  t.match(err, { code: 'MESH_E_HTTP_TIMEOUT', message: /no answer within the timeout/ });
});

t.test('refused, bad URL and bad scheme are clear errors', async (t) => {
  await t.rejects(httpRequest('http://127.0.0.1:1/', { timeoutMs: 2000 }), { code: 'MESH_E_HTTP_FAILED', message: /ECONNREFUSED/ });
  await t.rejects(httpRequest('not a url', { timeoutMs: 2000 }), { code: 'MESH_E_HTTP_URL', message: /not a URL: not a url/ });
  await t.rejects(httpRequest('ftp://127.0.0.1/x', { timeoutMs: 2000 }), {
    code: 'MESH_E_HTTP_URL',
    message: /unsupported URL scheme ftp:/,
  });
});
