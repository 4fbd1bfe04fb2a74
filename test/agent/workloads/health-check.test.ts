import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { runCheck } from '../../../agent/workloads/health-check.js';
import { toCheck } from '../../../agent/workloads/workload.js';

const check = (c: Record<string, unknown>) =>
  toCheck({ interval: '1s', timeout: '1s', ...c } as never) as NonNullable<ReturnType<typeof toCheck>>;

t.test('http: 2xx passing, 429 warning, else critical; unreachable critical', async (t) => {
  let status = 200;
  const server = http.createServer((_req, res) => {
    res.writeHead(status);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
  t.match(await runCheck(check({ http: url })), { status: 'passing', output: /200/ });
  status = 429;
  t.equal((await runCheck(check({ http: url }))).status, 'warning');
  status = 503;
  t.equal((await runCheck(check({ http: url }))).status, 'critical');
  t.match(await runCheck(check({ http: 'http://127.0.0.1:1/' })), { status: 'critical', output: /http check failed/ });
});

t.test('tcp: connect or not', async (t) => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  t.equal((await runCheck(check({ tcp: `127.0.0.1:${port}` }))).status, 'passing');
  await new Promise((r) => server.close(r));
  t.match(await runCheck(check({ tcp: `127.0.0.1:${port}` })), { status: 'critical', output: /ECONNREFUSED/ });
});

t.test('exec: 0 passing, 1 warning, other critical; ttl passes', async (t) => {
  t.equal((await runCheck(check({ exec: ['true'] }))).status, 'passing');
  t.equal((await runCheck(check({ exec: ['sh', '-c', 'echo warn; exit 1'] }))).status, 'warning');
  t.match(await runCheck(check({ exec: ['sh', '-c', 'exit 2'] })), { status: 'critical', output: 'exit 2' });
  t.equal((await runCheck(check({ exec: ['/nonexistent/prog'] }))).status, 'critical');
  t.equal((await runCheck(check({ ttl: '30s' }))).status, 'passing');
});

t.test('grpc: the health protocol', async (t) => {
  let serving = true;
  const server = new grpc.Server();
  const id = (b: Buffer) => b;
  server.addService(
    {
      Check: {
        path: '/grpc.health.v1.Health/Check',
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      },
    },
    {
      Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const svc = call.request.length > 2 ? call.request.subarray(2).toString() : '';
        cb(null, Buffer.from([0x08, serving && svc !== 'down' ? 1 : 2]));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  t.match(await runCheck(check({ grpc: `127.0.0.1:${port}` })), { status: 'passing', output: /SERVING/ });
  t.equal((await runCheck(check({ grpc: `127.0.0.1:${port}/down` }))).status, 'critical');
  serving = false;
  t.equal((await runCheck(check({ grpc: `127.0.0.1:${port}` }))).status, 'critical');
  t.equal((await runCheck(check({ grpc: '127.0.0.1:1' }))).status, 'critical');
});
