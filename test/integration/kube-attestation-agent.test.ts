/**
 * An agent in kubernetes mode (sidecar) with real Envoy: no join, its node
 * identity comes from the pod's projected service-account token (real
 * kube-apiserver, real control plane with kubernetes.attestation), its
 * workload SVID is spiffe://<td>/ns/<ns>/sa/<sa> of the pod (go-spiffe
 * verifies it, and it is what its Envoy presents), and it serves mTLS: a
 * joined VM agent's web calls the pod's api through the mesh, and the pod's
 * app sees web's SPIFFE ID. Then the pod is deleted: a new attestation with
 * its token is refused (MESH_E_KUBE_POD_GONE). A per-node agent holds the
 * tokens of two pods of one Kubernetes node and serves both pods' workloads,
 * each with its own pod's SPIFFE ID.
 */
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { connectControlPlane } from '../../agent/identity/cp-client.js';
import { attestNode } from '../../agent/identity/kube-attest.js';
import { startKube } from '../support/kube.js';
import { scheduledPod } from '../support/kube-tokens.js';
import { type EchoAnswer, getJson, startEchoApp, xfccUri } from '../support/mesh-apps.js';
import { startMeshNode } from '../support/mesh-node.js';
import { startMeshPeers } from '../support/mesh-world.js';
import { freePorts } from '../support/ports.js';
import { verifySvid } from '../support/svid-verify.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';

/** The leaf certificate a TLS server presents on a port (no client certificate sent). */
function servedLeaf(port: number, caPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, checkServerIdentity: () => undefined }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert === undefined) reject(new Error('no peer certificate'));
      else resolve(cert);
    });
    socket.on('error', reject);
  });
}

/** An API server, a namespace kpod-*, a control plane attesting it (cluster "test") with Consul, and a folder holding the CA bundle. */
async function kubeWorld(t: Test) {
  const kube = await startKube(t);
  const ns = await kube.namespace('kpod');
  const peers = await startMeshPeers(t, {
    trustDomain: TD,
    kubernetes: { kubeconfig: kube.kubeconfig, cluster: 'test', attestation: { allow: [{ namespace: 'kpod-*' }] } },
  });
  const dir = await tempDir(t, 'kpod-');
  const caBundle = path.join(dir, 'ca-bundle.pem');
  await writeFile(caBundle, peers.cp.bundlePem());
  return { kube, ns, peers, dir, caBundle };
}

t.test('a sidecar agent in kubernetes mode gets its SVID from the pod token and serves mTLS', async (t) => {
  const { kube, ns, peers, dir, caBundle } = await kubeWorld(t);
  await kube.serviceAccount(ns, 'api');
  const pod = await kube.runningPod(ns, 'api-0', { serviceAccount: 'api', podIP: '10.244.3.10' });
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `${await kube.podToken(ns, pod, [TD], 3600)}\n`, { mode: 0o600 });

  const web = await startEchoApp('web');
  const api = await startEchoApp('api');
  t.teardown(() => Promise.all([web.close(), api.close()]));
  const [webMesh, apiMesh, apiLocal] = (await freePorts(3)) as [number, number, number];

  const podNode = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'pod-api-0',
    join: false,
    workloads: {
      'api.yaml': `name: api\nnamespace: ${ns}\nserviceAccount: api\nport: ${api.port}\nmeshPort: ${apiMesh}\nprotocol: http\n`,
    },
    extraConfig: {
      controlPlane: { address: peers.cp.cp.address, caBundle },
      kubernetes: { mode: 'sidecar', tokenFiles: [tokenFile] },
    },
  });
  t.teardown(() => podNode.stop());
  const vm = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-web',
    workloads: {
      'web.yaml': `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal}, namespace: ${ns} }]\n`,
    },
  });
  t.teardown(() => vm.stop());

  const podId = `spiffe://${TD}/ns/${ns}/sa/api`;
  const status = podNode.agent.dataPlane?.status().identity;
  t.equal(
    status?.node.spiffeId,
    `spiffe://${TD}/mesh/node/k8s.test.${ns}.api-0`,
    "the node identity is the pod's node record, attested (no join)",
  );

  const answer = await waitFor(() => getJson<EchoAnswer>(apiLocal).catch(() => undefined), {
    timeoutMs: 60_000,
    what: 'web -> pod api through the mesh',
  });
  t.equal(answer.app, 'api', 'the VM workload reaches the pod workload through the mesh');
  t.equal(xfccUri(answer.xfcc), `spiffe://${TD}/ns/default/sa/web`, "the pod's app sees the VM workload's SPIFFE ID");

  const workloadsDir = path.join(podNode.dataDir, 'identity', 'workloads');
  const [svidDir] = await readdir(workloadsDir);
  const chainPem = await readFile(path.join(workloadsDir, svidDir as string, 'svid.pem'), 'utf8');
  const verified = await verifySvid(chainPem, peers.cp.bundlePem());
  t.match(verified, { ok: true, spiffe_id: podId }, `go-spiffe verifies the pod's workload SVID ${podId}`);
  const served = await servedLeaf(apiMesh, peers.cp.bundlePem());
  t.equal(served.fingerprint256, new X509Certificate(chainPem).fingerprint256, "the pod's Envoy presents that SVID on its mesh port");

  await kube.core.deleteNamespacedPod({ name: 'api-0', namespace: ns, gracePeriodSeconds: 0 });
  const client = connectControlPlane({ address: peers.cp.cp.address, trustDomain: TD, bundlePem: peers.cp.bundlePem() });
  t.teardown(() => client.close());
  const refusal = await waitFor(
    () =>
      attestNode(client, [tokenFile]).then(
        () => undefined,
        (err: { code?: string }) => err,
      ),
    { what: "attestation with the deleted pod's token to be refused" },
  );
  t.equal(refusal.code, 'MESH_E_KUBE_POD_GONE', 'once the pod is deleted, re-attesting (renewal) with its token is refused');
});

t.test("a per-node agent serves the workloads of two pods of one Kubernetes node, each with its pod's identity", async (t) => {
  const { kube, ns, peers, dir, caBundle } = await kubeWorld(t);
  const tokenFiles: string[] = [];
  for (const sa of ['api', 'db']) {
    await kube.serviceAccount(ns, sa);
    const pod = await scheduledPod(kube, ns, `${sa}-0`, sa, 'node-a');
    const file = path.join(dir, `${sa}-0.token`);
    await writeFile(file, await kube.podToken(ns, pod, [TD]), { mode: 0o600 });
    tokenFiles.push(file);
  }
  const apps = await Promise.all(['web', 'api', 'db'].map((name) => startEchoApp(name)));
  t.teardown(() => Promise.all(apps.map((a) => a.close())));
  const [web, api, db] = apps as [
    Awaited<ReturnType<typeof startEchoApp>>,
    Awaited<ReturnType<typeof startEchoApp>>,
    Awaited<ReturnType<typeof startEchoApp>>,
  ];
  const [webMesh, apiMesh, dbMesh, apiLocal, dbLocal] = (await freePorts(5)) as [number, number, number, number, number];
  const podFile = (name: string, port: number, meshPort: number) =>
    `name: ${name}\nnamespace: ${ns}\nserviceAccount: ${name}\nport: ${port}\nmeshPort: ${meshPort}\nprotocol: http\n`;
  const nodeAgent = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'node-a',
    join: false,
    workloads: { 'api.yaml': podFile('api', api.port, apiMesh), 'db.yaml': podFile('db', db.port, dbMesh) },
    extraConfig: {
      controlPlane: { address: peers.cp.cp.address, caBundle },
      kubernetes: { mode: 'per-node', tokenFiles },
    },
  });
  t.teardown(() => nodeAgent.stop());
  t.equal(
    nodeAgent.agent.dataPlane?.status().identity.node.spiffeId,
    `spiffe://${TD}/mesh/node/k8s-node.test.node-a`,
    "the Kubernetes node's record",
  );
  const vm = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-web',
    workloads: {
      'web.yaml': `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal}, namespace: ${ns} }, { service: db, localPort: ${dbLocal}, namespace: ${ns} }]\n`,
    },
  });
  t.teardown(() => vm.stop());
  for (const [name, port, meshPort] of [
    ['api', apiLocal, apiMesh],
    ['db', dbLocal, dbMesh],
  ] as const) {
    const answer = await waitFor(() => getJson<EchoAnswer>(port).catch(() => undefined), { timeoutMs: 60_000, what: `web -> ${name}` });
    t.equal(answer.app, name, `the VM workload reaches ${name} through the mesh`);
    t.equal(xfccUri(answer.xfcc), `spiffe://${TD}/ns/default/sa/web`, `${name} sees the VM workload's SPIFFE ID`);
    const served = await servedLeaf(meshPort, peers.cp.bundlePem());
    t.equal(served.subjectAltName, `URI:spiffe://${TD}/ns/${ns}/sa/${name}`, `${name}'s mesh port presents its own pod's SVID`);
  }
});
