/**
 * SVIDs for pods from projected service-account tokens, against a real
 * kube-apiserver (startKube) and a real control plane: a pod-bound token for
 * the control plane's audience gets a node SVID for the pod's node record,
 * which may hold only spiffe://<td>/ns/<ns>/sa/<sa> (verified with go-spiffe);
 * a token of a namespace or service account that is not allowed, an expired
 * token, a token of a deleted pod, a token for another audience, a token bound
 * to no pod, garbage and an unreachable API server are each refused with
 * their own code, audited, and issue nothing. Tokens appear in no log line,
 * no audit row and not in the database.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { connectControlPlane } from '../../agent/identity/cp-client.js';
import type { AuditRow } from '../../controlplane/store/audit-repo.js';
import { anonymousClient, freshCsr, startTestControlPlane } from '../support/controlplane.js';
import { startKube } from '../support/kube.js';
import { scheduledPod, signedPodToken } from '../support/kube-tokens.js';
import { verifySvid } from '../support/svid-verify.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';

t.test('pod attestation: one valid token gets an SVID; each refusal has its code and is audited', async (t) => {
  const kube = await startKube(t);
  const allowedNs = await kube.namespace('katt');
  const otherNs = await kube.namespace('other');
  const tcp = await startTestControlPlane({
    trustDomain: TD,
    kubernetes: {
      kubeconfig: kube.kubeconfig,
      cluster: 'test',
      attestation: { allow: [{ namespace: 'katt-*', serviceAccount: 'web' }], nodeSvidTtl: '30m' },
    },
  });
  t.teardown(() => tcp.stop());
  const client = anonymousClient(tcp);
  t.teardown(() => client.close());
  const attestWith = (tokenList: string[], csr: Buffer) =>
    (client.attestKubernetes as NonNullable<typeof client.attestKubernetes>)(tokenList, csr);
  const attest = async (tokenList: string[]) => attestWith(tokenList, (await freshCsr()).csr);
  const certCount = () => (tcp.cp.db.prepare('SELECT COUNT(*) AS n FROM certificates').get() as { n: number }).n;
  const attestAudit = () => tcp.cp.db.prepare("SELECT * FROM audit WHERE action = 'kube.attest' ORDER BY id").all() as AuditRow[];
  const tokens: string[] = [];

  await kube.serviceAccount(allowedNs, 'web');
  await kube.serviceAccount(allowedNs, 'batch');
  await kube.serviceAccount(otherNs, 'web');
  const web = await kube.runningPod(allowedNs, 'web-0', { serviceAccount: 'web', podIP: '10.244.1.10' });
  const batch = await kube.runningPod(allowedNs, 'batch-0', { serviceAccount: 'batch', podIP: '10.244.1.11' });
  const foreign = await kube.runningPod(otherNs, 'web-0', { serviceAccount: 'web', podIP: '10.244.2.10' });

  // The valid case.
  const good = await kube.podToken(allowedNs, web, [TD], 3600);
  tokens.push(good);
  const before = Date.now();
  const node = await attest([good]);
  const nodeName = `k8s.test.${allowedNs}.web-0`;
  t.equal(node.spiffeId, `spiffe://${TD}/mesh/node/${nodeName}`, 'the node SVID names the node record of the pod');
  t.ok(node.notAfter - before <= 30 * 60_000 + 5_000, 'its TTL is at most kubernetes.attestation.nodeSvidTtl (30m)');
  const row = tcp.cp.db.prepare('SELECT * FROM nodes WHERE name = ?').get(nodeName) as { allow: string; status: string };
  const workloadId = `spiffe://${TD}/ns/${allowedNs}/sa/web`;
  t.same(JSON.parse(row.allow), [workloadId], "the node record may hold exactly the pod's SPIFFE ID");

  const nodeKey = await freshCsr();
  const renewed = await attestWith([good], nodeKey.csr);
  t.equal(renewed.spiffeId, node.spiffeId, 'attesting again (renewal) with the same token gives the same node record');
  const nodeClient = connectControlPlane({
    address: tcp.cp.address,
    trustDomain: TD,
    bundlePem: renewed.bundle.rootsPem,
    node: { chainPem: renewed.chainPem, keyPem: nodeKey.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string },
  });
  t.teardown(() => nodeClient.close());
  const svid = await nodeClient.signWorkload(workloadId, (await freshCsr()).csr);
  const verified = await verifySvid(svid.chainPem, svid.bundle.rootsPem);
  t.match(verified, { ok: true, spiffe_id: workloadId, leaf: { uri_sans: [workloadId], is_ca: false } }, 'go-spiffe accepts the pod SVID');
  await t.rejects(
    nodeClient.signWorkload(`spiffe://${TD}/ns/${allowedNs}/sa/batch`, (await freshCsr()).csr),
    {
      code: 'MESH_E_NOT_AUTHORIZED',
    },
    'the pod node may hold no other SPIFFE ID',
  );
  await t.rejects(
    nodeClient.renewNode((await freshCsr()).csr),
    { code: 'MESH_E_NOT_AUTHORIZED', message: /attesting again/ },
    'RenewNode is refused: renewal re-attests',
  );
  t.throws(() => tcp.token(nodeName, []), { code: 'MESH_E_USAGE', message: /reserved/ }, 'no join token for an attested node name');
  const okRows = attestAudit().filter((r) => r.result === 'ok');
  t.equal(okRows.length, 2, 'both attestations audited ok');
  t.match(okRows[0], {
    actor: `k8s:test/${allowedNs}/web-0`,
    spiffe_id: node.spiffeId,
    detail: new RegExp(`${allowedNs}/web-0 \\(${web.metadata?.uid}\\) allow ${workloadId}`),
  });

  // Measured, not asserted: one attestation is a TokenReview, a pod read, a signature and a commit.
  const took: number[] = [];
  for (let i = 0; i < 10; i++) {
    const csr = (await freshCsr()).csr;
    const started = performance.now();
    await attestWith([good], csr);
    took.push(performance.now() - started);
  }
  took.sort((a, b) => a - b);
  t.comment(`attestation latency over 10 sequential calls: median ${took[5]?.toFixed(1)} ms, max ${took[9]?.toFixed(1)} ms`);

  // Refusals: each with its code, audited, nothing issued.
  /** Asserts the refusal, that nothing was issued and its audit row; returns the error's message and details as text. */
  const refused = async (what: string, tokenList: string[], code: string, message?: RegExp): Promise<string> => {
    const certs = certCount();
    const audits = attestAudit().length;
    let said = '';
    await t.rejects(
      attest(tokenList).catch((err: unknown) => {
        said = JSON.stringify({ message: (err as Error).message, details: (err as { details?: unknown }).details });
        throw err;
      }),
      { code, ...(message ? { message } : {}) },
      `${what}: ${code}`,
    );
    t.equal(certCount(), certs, `${what}: no certificate issued`);
    const last = attestAudit().slice(audits);
    t.match(last, [{ result: code, action: 'kube.attest' }], `${what}: one audit row with the code`);
    return said;
  };

  const foreignToken = await kube.podToken(otherNs, foreign, [TD]);
  tokens.push(foreignToken);
  await refused('a namespace that is not allowed', [foreignToken], 'MESH_E_KUBE_NOT_ALLOWED', new RegExp(`namespace ${otherNs}`));
  const batchToken = await kube.podToken(allowedNs, batch, [TD]);
  tokens.push(batchToken);
  await refused('a service account that is not allowed', [batchToken], 'MESH_E_KUBE_NOT_ALLOWED', /service account batch/);

  const wrongAudience = await kube.podToken(allowedNs, web, ['other.example']);
  tokens.push(wrongAudience);
  await refused('a token for another audience', [wrongAudience], 'MESH_E_KUBE_TOKEN_AUDIENCE', /other\.example, not example\.org/);

  const nowSec = Math.floor(Date.now() / 1000);
  const fresh = await signedPodToken(kube, web, [TD], { fromSec: nowSec - 60, toSec: nowSec + 600 });
  tokens.push(fresh);
  const control = await kube.auth.createTokenReview({ body: { spec: { token: fresh, audiences: [TD] } } });
  t.equal(control.status?.authenticated, true, 'control: a token signed this way and not expired is one the API server accepts');
  const expired = await signedPodToken(kube, web, [TD], { fromSec: nowSec - 7200, toSec: nowSec - 3600 });
  tokens.push(expired);
  await refused('an expired token', [expired], 'MESH_E_KUBE_TOKEN_EXPIRED', /expired at/);

  const unbound = (
    await kube.core.createNamespacedServiceAccountToken({
      name: 'web',
      namespace: allowedNs,
      body: { spec: { audiences: [TD], expirationSeconds: 3600 } },
    })
  ).status?.token as string;
  tokens.push(unbound);
  await refused('a token bound to no pod', [unbound], 'MESH_E_KUBE_TOKEN_NOT_POD_BOUND');
  await refused('garbage', ['not-a-token'], 'MESH_E_KUBE_TOKEN_INVALID');

  const doomed = await kube.runningPod(allowedNs, 'web-1', { serviceAccount: 'web', podIP: '10.244.1.12' });
  const doomedToken = await kube.podToken(allowedNs, doomed, [TD]);
  tokens.push(doomedToken);
  await kube.core.deleteNamespacedPod({ name: 'web-1', namespace: allowedNs, gracePeriodSeconds: 0 });
  await waitFor(
    async () =>
      (await kube.core.listNamespacedPod({ namespace: allowedNs })).items.some((p) => p.metadata?.name === 'web-1') ? undefined : true,
    {
      what: 'pod web-1 to be gone',
    },
  );
  await refused('a token of a deleted pod', [doomedToken], 'MESH_E_KUBE_POD_GONE', /web-1 .* does not exist/);
  // A new pod of the same name has another uid: the old token is still refused.
  const reborn = await kube.runningPod(allowedNs, 'web-1', { serviceAccount: 'web', podIP: '10.244.1.12' });
  const earlier = await refused(
    'a token of an earlier pod of the same name',
    [doomedToken],
    'MESH_E_KUBE_POD_GONE',
    /web-1 \(uid \S+\) .* does not exist/,
  );
  t.notMatch(earlier, reborn.metadata?.uid ?? 'no uid', "the refusal does not tell a caller without a valid token the current pod's uid");

  await kube.stopApiserver();
  await refused('the API server down', [good], 'MESH_E_KUBE_UNREACHABLE');
  await kube.startApiserver();
  t.equal((await attest([good])).spiffeId, node.spiffeId, 'with the API server back, the valid token is accepted again');

  const logs = tcp.logs.join('\n');
  const audit = JSON.stringify(tcp.cp.db.prepare('SELECT * FROM audit').all());
  await tcp.cp.db.prepare('PRAGMA wal_checkpoint(FULL)').run();
  const dbBytes = await readFile(path.join(tcp.dataDir, 'controlplane.db'), 'latin1');
  for (const token of tokens) {
    const signature = token.split('.')[2] ?? token;
    if (logs.includes(signature) || audit.includes(signature) || dbBytes.includes(signature)) t.fail('a token was logged or stored');
  }
  t.pass(`none of the ${tokens.length} tokens appears in the logs (${tcp.logs.length} lines), the audit log or the database`);
  t.comment(
    attestAudit()
      .map((r) => `${r.result} ${r.actor} ${r.detail ?? ''}`.slice(0, 200))
      .join('\n'),
  );
});

t.test('per-node: the tokens of several pods of one Kubernetes node make one node record holding their IDs', async (t) => {
  const kube = await startKube(t);
  const ns = await kube.namespace('katt');
  const tcp = await startTestControlPlane({
    trustDomain: TD,
    kubernetes: { kubeconfig: kube.kubeconfig, cluster: 'test', attestation: { allow: [{ namespace: 'katt-*' }] } },
  });
  t.teardown(() => tcp.stop());
  const client = anonymousClient(tcp);
  t.teardown(() => client.close());
  const attest = async (tokenList: string[]) =>
    (client.attestKubernetes as NonNullable<typeof client.attestKubernetes>)(tokenList, (await freshCsr()).csr);
  for (const sa of ['web', 'api']) await kube.serviceAccount(ns, sa);
  const podOn = async (name: string, sa: string, node: string) => kube.podToken(ns, await scheduledPod(kube, ns, name, sa, node), [TD]);
  const web = await podOn('web-0', 'web', 'node-a');
  const api = await podOn('api-0', 'api', 'node-a');
  const elsewhere = await podOn('api-1', 'api', 'node-b');

  const svid = await attest([web, api]);
  t.equal(svid.spiffeId, `spiffe://${TD}/mesh/node/k8s-node.test.node-a`, "the node record is the Kubernetes node's");
  const row = tcp.cp.db.prepare("SELECT allow FROM nodes WHERE name = 'k8s-node.test.node-a'").get() as { allow: string };
  t.same(
    JSON.parse(row.allow),
    [`spiffe://${TD}/ns/${ns}/sa/api`, `spiffe://${TD}/ns/${ns}/sa/web`],
    "it may hold both pods' IDs, no more",
  );

  const certs = (tcp.cp.db.prepare('SELECT COUNT(*) AS n FROM certificates').get() as { n: number }).n;
  await t.rejects(
    attest([web, elsewhere]),
    { code: 'MESH_E_NOT_AUTHORIZED', message: /node-a, node-b/ },
    'pods of two Kubernetes nodes are refused',
  );
  await t.rejects(attest([web, 'garbage']), { code: 'MESH_E_KUBE_TOKEN_INVALID' }, 'one bad token refuses the whole request');
  t.equal((tcp.cp.db.prepare('SELECT COUNT(*) AS n FROM certificates').get() as { n: number }).n, certs, 'and nothing is issued');
  const audit = tcp.cp.db.prepare("SELECT result FROM audit WHERE action = 'kube.attest' ORDER BY id").all() as Array<{ result: string }>;
  t.same(
    audit.map((r) => r.result),
    ['ok', 'MESH_E_NOT_AUTHORIZED', 'MESH_E_KUBE_TOKEN_INVALID'],
    'each attempt audited',
  );
});

t.test('a control plane without kubernetes.attestation refuses attestation, audited', async (t) => {
  const tcp = await startTestControlPlane({ trustDomain: TD });
  t.teardown(() => tcp.stop());
  const client = anonymousClient(tcp);
  t.teardown(() => client.close());
  const attest = client.attestKubernetes as NonNullable<typeof client.attestKubernetes>;
  await t.rejects(attest(['a.b.c'], (await freshCsr()).csr), { code: 'MESH_E_KUBE_ATTESTATION_OFF', message: /kubernetes\.attestation/ });
  const rows = tcp.cp.db.prepare("SELECT result FROM audit WHERE action = 'kube.attest'").all() as Array<{ result: string }>;
  t.same(rows, [{ result: 'MESH_E_KUBE_ATTESTATION_OFF' }], 'one audit row with the code');
  t.doesNotThrow(() => tcp.token('k8s.prod.shop.web-0', []), 'without attestation, no node name is reserved');
});
