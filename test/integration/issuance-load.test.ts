/**
 * The grpc-go load generator of the CA benchmark (test/tools/issuance-load,
 * driven by bench/issuance-load.ts) against a real control plane: closed and
 * open loops issue real SVIDs with the node's mTLS identity, the sampled
 * responses are SVIDs for the requested IDs that chain to the bundle, and the
 * tool refuses a server with the wrong SPIFFE ID and names a missing file.
 * Its --consul-leaf mode (bench/vs-consul.ts) gets new leaf certificates from
 * a real Consul dev agent, and counts an answer that is not one as an error.
 */
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { loadNodeIdentity } from '../../agent/identity/identity-store.js';
import {
  controlPlaneServerId,
  decodeSvidResponse,
  encodeSignWorkload,
  type IssuanceLoadOptions,
  type IssuanceLoadResult,
  issuanceLoadArgs,
  runConsulLeafLoad,
  runIssuanceLoad,
  SIGN_WORKLOAD_METHOD,
} from '../../bench/lib/issuance-load.js';
import { run } from '../../lib/exec.js';
import { contract } from '../../lib/proto/contract.js';
import { uriSans } from '../../lib/x509/cert-info.js';
import { chainsToBundle } from '../support/chain-checks.js';
import { startConsulDev } from '../support/consul.js';
import { freshCsrs, joinNode, joinSource, startTestControlPlane } from '../support/controlplane.js';
import { createTestCa } from '../support/test-ca.js';
import { tools } from '../support/tools.js';

// A cold cache builds the tool first (grpc-go from the module cache); warm, this file takes a few seconds.
t.setTimeout(180_000);

const IDS = ['web', 'api', 'db', 'cache'].map((sa) => `spiffe://example.org/ns/load/sa/${sa}`);

t.test('issuance-load issues real SVIDs closed- and open-loop, and checks the server', async (t) => {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  const dir = t.testdir({});
  await joinNode(joinSource(tcp), 'load1', ['spiffe://example.org/ns/load/sa/*'], dir);
  const identity = await loadNodeIdentity(dir);

  const csrs = (await freshCsrs(16)).map((c, i) => ({ id: IDS[i % IDS.length] as string, ...c }));
  const keys = new Set(csrs.map((c) => c.key.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')));
  const base: IssuanceLoadOptions = {
    address: tcp.cp.address,
    serverId: controlPlaneServerId(tcp.trustDomain),
    bundlePem: identity.bundlePem,
    node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
    requests: csrs.map((c) => encodeSignWorkload(c.id, c.csr)),
    load: { concurrency: 4 },
    conns: 2,
    durationMs: 1_000,
    warmupMs: 200,
    samples: true,
  };
  t.equal(SIGN_WORKLOAD_METHOD, contract().Identity.service.SignWorkload?.path, 'the method name is the contract one');
  t.equal(base.serverId, 'spiffe://example.org/mesh/controlplane');

  const checkRun = (t: Test, r: IssuanceLoadResult & { samples: Buffer[] }) => {
    t.ok(r.count > 0, `calls succeeded (${r.count})`);
    t.equal(r.errors, 0, `no call failed (first error: ${r.firstError})`);
    t.equal(r.firstError, null);
    t.ok(r.elapsedMs >= 1_000, `elapsed covers the measured second (${r.elapsedMs} ms)`);
    t.ok(
      r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.maxMs >= r.p99Ms,
      `latencies are ordered and positive (${r.p50Ms}/${r.p99Ms}/${r.maxMs} ms)`,
    );
    t.ok(r.cpuMs > 0, `the tool measured its own CPU (${r.cpuMs} ms)`);
    t.ok(r.samples.length > 0 && r.samples.length <= 20, `sampled responses (${r.samples.length})`);
    for (const [i, bytes] of r.samples.entries()) {
      const svid = decodeSvidResponse(bytes);
      const leaf = new X509Certificate(svid.chainPem);
      const ok =
        IDS.includes(svid.spiffeId) &&
        uriSans(leaf).join() === svid.spiffeId &&
        keys.has(leaf.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')) &&
        chainsToBundle(svid.chainPem, identity.bundlePem) &&
        svid.bundle.rootsPem === identity.bundlePem;
      if (!ok) t.fail(`sample ${i}: ${svid.spiffeId} ${uriSans(leaf).join()} is not a requested SVID chaining to the bundle`);
    }
    t.pass('every sample is an SVID for a requested ID and key, chaining to the bundle');
  };

  await t.test('closed loop, concurrency 4', async (t) => {
    const closed = await runIssuanceLoad(base);
    checkRun(t, closed);
    const first = closed.samples[0];
    const foreign = (await createTestCa('example.org')).bundlePem;
    t.notOk(first && chainsToBundle(decodeSvidResponse(first).chainPem, foreign), 'the chain check rejects another CA');
  });

  await t.test('open loop, 50/s', async (t) => {
    const open = await runIssuanceLoad({ ...base, load: { rate: 50 }, warmupMs: 0 });
    checkRun(t, open);
    t.equal(open.count, 50, 'every scheduled call was made');
  });

  await t.test('a control plane with another SPIFFE ID is refused', async (t) => {
    await t.rejects(runIssuanceLoad({ ...base, serverId: 'spiffe://example.org/mesh/impostor', durationMs: 200, warmupMs: 0 }), {
      message:
        /issuance-load exited with 1: .*the server is not --server-id spiffe:\/\/example\.org\/mesh\/impostor: its certificate carries the URI SANs \[spiffe:\/\/example\.org\/mesh\/controlplane\]/s,
    });
  });

  await t.test('a control plane that does not chain to --ca is refused', async (t) => {
    const other = await createTestCa('example.org');
    await t.rejects(runIssuanceLoad({ ...base, bundlePem: other.bundlePem, durationMs: 200, warmupMs: 0 }), {
      message: /issuance-load exited with 1: .*the server's certificate does not chain to --ca/s,
    });
  });

  await t.test('a missing --requests file is named', async (t) => {
    const missing = path.join(dir, 'no-such-requests.bin');
    const files = {
      ca: path.join(dir, 'identity', 'bundle.pem'),
      cert: path.join(dir, 'identity', 'node.pem'),
      key: path.join(dir, 'identity', 'node.key'),
      requests: missing,
    };
    const result = await run((await tools()).issuanceLoad.path, issuanceLoadArgs(base, files), { timeoutMs: 30_000 });
    t.equal(result.code, 2, 'a usage error');
    t.match(result.stderr, `--requests: open ${missing}: no such file or directory`);
    t.equal(result.stdout, '', 'no result');
  });
});

t.test('--consul-leaf gets new leaf certificates from Consul and checks each answer', async (t) => {
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  // Consul's CA limits signing to 50 CSRs/s by default; the benchmark measures it both ways.
  const put = await fetch(`http://${consul.httpAddr}/v1/connect/ca/configuration`, {
    method: 'PUT',
    body: JSON.stringify({ Provider: 'consul', Config: { LeafCertTTL: '72h', CSRMaxPerSecond: 0 } }),
  });
  t.equal(put.status, 200, 'the CA limit is off');

  const r = await runConsulLeafLoad({
    baseUrl: `http://${consul.httpAddr}`,
    prefix: 'leaf-test',
    load: { concurrency: 2 },
    durationMs: 1_000,
    warmupMs: 0,
  });
  t.ok(r.count > 0, `leaf certificates issued (${r.count})`);
  t.equal(r.errors, 0, `no call failed (first error: ${r.firstError})`);
  t.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms, `latencies (${r.p50Ms}/${r.p99Ms} ms)`);
  // Each name was new: asking again for one gives the certificate the agent keeps for it, for that service.
  const leaf = (await consul.api('/v1/agent/connect/ca/leaf/leaf-test-1')) as { Service: string; CertPEM: string };
  t.equal(leaf.Service, 'leaf-test-1');
  t.match(
    uriSans(new X509Certificate(leaf.CertPEM)).join(),
    /^spiffe:\/\/[^/]+\.consul\/ns\/default\/dc\/dc1\/svc\/leaf-test-1$/,
    'a Connect leaf for that service',
  );

  // Something that answers 200 with no certificate is not counted as an issuance.
  const fake = createServer((_req, res) => res.end('{"Service":"other","CertPEM":""}'));
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => fake.close(() => resolve())));
  const port = (fake.address() as AddressInfo).port;
  const bad = await runConsulLeafLoad({
    baseUrl: `http://127.0.0.1:${port}`,
    prefix: 'x',
    load: { concurrency: 1 },
    durationMs: 200,
    warmupMs: 0,
  });
  t.equal(bad.count, 0, 'no issuance counted');
  t.ok(bad.errors > 0, 'every call failed');
  t.match(bad.firstError, /leaf x-\d+: the answer is for service "other" and carries no PEM certificate/);

  const usage = await run((await tools()).issuanceLoad.path, ['--consul-leaf', 'localhost:8500', '--concurrency', '1'], {
    timeoutMs: 30_000,
  });
  t.equal(usage.code, 2, 'a usage error');
  t.match(usage.stderr, '--consul-leaf "localhost:8500" is not http://HOST:PORT');
});
