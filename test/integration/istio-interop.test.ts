/**
 * Istio interop through the exported intermediate, with the real parts: a
 * control plane, Consul, a VM agent with its Envoy, and a second Envoy
 * standing in for an Istio sidecar (test/support/istio-sidecar.ts). No real
 * Istio: openssl signs the pod's workload certificate with ca-key.pem, as
 * Istio's CA would with the cacerts secret.
 * - go-spiffe accepts the pod's certificate against root-cert.pem;
 * - pod -> VM: the sidecar calls the VM's api over mTLS (checking the api's
 *   SPIFFE ID); api sees the pod's SPIFFE ID in XFCC;
 * - VM -> pod: web on the VM calls the pod's service, found in Consul (where
 *   the Kubernetes sync will put it), over mTLS; the pod's app sees web's ID;
 * - a certificate of the same trust domain from a CA outside our root is
 *   refused by the VM.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { runProgram } from '../support/cli.js';
import { startEnvoy } from '../support/envoy.js';
import { istioSidecarBootstrap, istioWorkloadCert } from '../support/istio-sidecar.js';
import { type EchoAnswer, getJson, startEchoApp, tlsProbe, xfccUri } from '../support/mesh-apps.js';
import { startMeshNode } from '../support/mesh-node.js';
import { meshTraffic, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { freePorts } from '../support/ports.js';
import { verifySvid } from '../support/svid-verify.js';
import { tempDir } from '../support/temp-dir.js';
import { createTestCa } from '../support/test-ca.js';
import { waitFor } from '../support/wait.js';
import { workloadYaml } from '../support/workload-files.js';

t.setTimeout(300_000);

const TD = 'example.org';
const SLEEPER = `spiffe://${TD}/ns/istio-ns/sa/sleeper`;
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;

t.test('an Istio-signed workload and a VM agent talk mTLS both ways through one root', async (t) => {
  const peers = await startMeshPeers(t, { trustDomain: TD });
  const apps = await startWebApi(t);
  const dir = await tempDir(t, 'mesh-istio-');
  const cacerts = path.join(dir, 'cacerts');

  // The operator's step: meshctl writes the cacerts files.
  const exported = await runProgram(meshctlProgram(), [
    'ca',
    'export-intermediate',
    '--for',
    'istio',
    '--out',
    cacerts,
    '--data-dir',
    peers.cp.dataDir,
  ]);
  t.equal(exported.code, 0, exported.err);
  const file = (name: string) => readFile(path.join(cacerts, name), 'utf8');

  // Istio's CA signs the pod's certificate with ca-key.pem (here: openssl).
  const pod = await istioWorkloadCert(
    dir,
    'sleeper',
    { cert: path.join(cacerts, 'ca-cert.pem'), key: path.join(cacerts, 'ca-key.pem') },
    SLEEPER,
    '0x51EE9E4',
  );

  const podChain = pod.pem + (await file('ca-cert.pem'));
  const rootsPem = await file('root-cert.pem');
  const svid = await verifySvid(podChain, rootsPem);
  t.ok(svid.ok, `go-spiffe accepts the pod's certificate against root-cert.pem: ${JSON.stringify(svid)}`);
  if (svid.ok) t.equal(svid.spiffe_id, SLEEPER);

  // The pod: its app and its sidecar.
  const sleeperApp = await startEchoApp('sleeper');
  t.teardown(() => sleeperApp.close());
  const [podIn, podOut, sleeperLocal] = (await freePorts(3)) as [number, number, number];
  const sidecar = await startEnvoy({
    bootstrap: istioSidecarBootstrap({
      trustDomain: TD,
      certChainPem: podChain,
      keyPem: await readFile(pod.key, 'utf8'),
      rootsPem,
      inboundPort: podIn,
      appPort: sleeperApp.port,
      outboundPort: podOut,
      upstreamPort: apps.ports.apiMesh,
      upstreamSan: API,
    }),
  });
  t.teardown(() => sidecar.stop());

  // The pod's service in Consul, as the Kubernetes sync registers it.
  const registered = await fetch(`http://${peers.consul.httpAddr}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Node: 'k8s-sync-test',
      Address: '127.0.0.1',
      Service: {
        ID: 'sleeper-pod-1',
        Service: 'sleeper',
        Address: '127.0.0.1',
        Port: sleeperApp.port,
        Meta: { mesh_spiffe_id: SLEEPER, mesh_protocol: 'http', mesh_port: String(podIn) },
      },
    }),
  });
  t.equal(registered.status, 200, 'the pod is in Consul');

  // The VM: web (calling api and the pod's sleeper) and api, on one agent with its Envoy.
  const web = workloadYaml({
    name: 'web',
    port: apps.web.port,
    meshPort: apps.ports.webMesh,
    upstreams: [{ service: 'api', localPort: apps.ports.apiLocal }],
  }).replace(/\]\n$/, `, { service: sleeper, localPort: ${sleeperLocal}, namespace: istio-ns }]\n`);
  const vm = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-istio',
    workloads: { 'web.yaml': web, 'api.yaml': apps.files()['api.yaml'] as string },
  });
  t.teardown(() => vm.stop());

  // pod -> VM: the sidecar's outbound port, mTLS to the VM's api.
  const toVm = await waitFor(() => getJson<EchoAnswer>(podOut).catch(() => undefined), {
    timeoutMs: 40_000,
    what: 'pod -> VM api through the sidecar',
  }).catch(async (err) => {
    // Both ends: the sidecar's output and the VM agent's last log lines.
    throw new Error(
      `${(err as Error).message}\n--- the sidecar\n${sidecar.output().slice(-3000)}\n--- the VM agent\n${vm.logs.slice(-40).join('\n')}`,
    );
  });
  t.equal(toVm.app, 'api');
  t.equal(xfccUri(toVm.xfcc), SLEEPER, "the VM's app sees the pod's SPIFFE ID");

  // VM -> pod: web's local port for sleeper, mTLS to the sidecar's inbound.
  const toPod = await meshTraffic(sleeperLocal, { timeoutMs: 40_000, what: 'VM web -> pod sleeper' });
  t.equal(toPod.app, 'sleeper');
  t.equal(xfccUri(toPod.xfcc), WEB, "the pod's app sees the VM workload's SPIFFE ID");
  const stats = await sidecar.stats();
  t.ok((stats.get(`listener.127.0.0.1_${podIn}.ssl.handshake`) ?? 0) >= 1, 'the sidecar terminated the VM call with TLS');
  t.ok((stats.get('cluster.upstream.ssl.handshake') ?? 0) >= 1, 'the sidecar called the VM with TLS');

  // A CA of the same trust domain outside our root is not trusted by the VM; the pod's certificate is.
  const podKeyPem = await readFile(pod.key, 'utf8');
  const accepted = await tlsProbe(apps.ports.apiMesh, { certPem: podChain, keyPem: podKeyPem, caPem: rootsPem });
  t.ok(accepted.ok && accepted.status === 200, `the pod's certificate is accepted (${accepted.ok ? accepted.status : accepted.error})`);
  const rogue = (await createTestCa(TD)).issue(SLEEPER);
  const refused = await tlsProbe(apps.ports.apiMesh, { certPem: rogue.chainPem, keyPem: rogue.keyPem, caPem: rootsPem });
  t.notOk(refused.ok && refused.status === 200, `a rogue CA's ${SLEEPER} is refused (${refused.ok ? refused.status : refused.error})`);
});
