/**
 * SVID rotation under load: the control plane issues 20 s SVIDs, the agent
 * renews them at about half their life and pushes them to Envoy over SDS.
 * A request loop through the mesh runs for 60 s (several rotations): zero
 * requests may fail, Envoy's certificate serial (admin /certs) changes, and
 * a fresh TLS connection to the mesh port is served with the newest SVID.
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import t from 'tap';
import type { XdsResource } from '../../agent/xds/resources/common.js';
import { parseStats } from '../support/envoy.js';
import { getJson, xfccUri } from '../support/mesh-apps.js';
import { startMeshNode } from '../support/mesh-node.js';
import { meshTraffic, startMeshWorld } from '../support/mesh-world.js';

t.setTimeout(240_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;

/** Serials of the certificates Envoy holds, from admin /certs. */
function serials(certsJson: string): string[] {
  const doc = JSON.parse(certsJson) as { certificates?: Array<{ cert_chain?: Array<{ serial_number?: string }> }> };
  return (doc.certificates ?? []).flatMap((c) => (c.cert_chain ?? []).slice(0, 1).map((x) => (x.serial_number ?? '').toUpperCase()));
}

/**
 * What changed in Envoy between two reads, among the stats that say why a
 * kept-alive connection could close under a client (drains, resets, listener and
 * cluster updates, idle timeouts) and the SDS updates: the failure message
 * carries them, as this test has failed in about 1 CI run in 10 with one
 * request's connection closed by Envoy, cause not yet known.
 */
function closeCauses(before: Map<string, number>, after: Map<string, number>): string[] {
  const why =
    /drain|reset|destroy|idle_timeout|max_duration|overflow|lds\.update_|cds\.update_|listener_(modified|added|removed)|cluster_modified|sds\..*update_(success|rejected|failure)/;
  const out: string[] = [];
  for (const [name, value] of after) {
    const delta = value - (before.get(name) ?? 0);
    if (delta !== 0 && why.test(name)) out.push(`${name} +${delta}`);
  }
  return out;
}

/** The serial of the certificate a fresh TLS connection to the mesh port is served with. */
function servedSerial(port: number, client: { cert: string; key: string }, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: '127.0.0.1', port, ca, cert: client.cert, key: client.key, checkServerIdentity: () => undefined },
      () => {
        const peer = socket.getPeerX509Certificate();
        socket.destroy();
        if (peer === undefined) reject(new Error('no peer certificate'));
        else resolve(new X509Certificate(peer.raw).serialNumber.toUpperCase());
      },
    );
    socket.on('error', reject);
  });
}

t.test('SVID TTL 20 s: 60 s of requests across rotations, zero failures, serial changes', async (t) => {
  const w = await startMeshWorld(t, { trustDomain: TD, svidTtl: '20s' });
  const { cp } = w;
  const { apiMesh, apiLocal } = w.ports;
  const n = await startMeshNode({ cp, consulAddr: w.consul.httpAddr, nodeName: 'vm-rot', workloads: w.files() });
  t.teardown(() => n.stop());
  await meshTraffic(apiLocal, { timeoutMs: 30_000 });

  const firstSerials = serials(await n.admin('/certs'));
  const statsBefore = parseStats(await n.admin('/stats'));
  const apiSerialsSeen = new Set<string>();
  const secretOf = (id: string) =>
    n.agent.dataPlane?.cache.current('vm-rot')?.snapshot.resources.secrets.get(id) as XdsResource | undefined;
  const webClient = () => {
    const s = secretOf(WEB)?.tls_certificate as { certificate_chain: { inline_string: string }; private_key: { inline_string: string } };
    return { cert: s.certificate_chain.inline_string, key: s.private_key.inline_string };
  };

  let ok = 0;
  let failed = 0;
  const failures: string[] = [];
  const deadline = Date.now() + 60_000;
  let nextProbe = 0;
  while (Date.now() < deadline) {
    try {
      const answer = await getJson(apiLocal, '/', 3_000);
      if (answer.app === 'api' && xfccUri(answer.xfcc) === WEB) ok++;
      else {
        failed++;
        failures.push(JSON.stringify(answer).slice(0, 200));
      }
    } catch (err) {
      failed++;
      // fetch's own message is "fetch failed"; the cause says which (a reset, a closed kept-alive connection, a timeout).
      const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
      failures.push(
        `${(err as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''} at ${new Date().toISOString()}`,
      );
    }
    if (Date.now() >= nextProbe) {
      nextProbe = Date.now() + 2_000;
      apiSerialsSeen.add(await servedSerial(apiMesh, webClient(), cp.bundlePem()));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const lastSerials = serials(await n.admin('/certs'));
  const changed = closeCauses(statsBefore, parseStats(await n.admin('/stats')));
  t.equal(
    failed,
    0,
    `zero failed requests (${ok} succeeded)${failures.length ? `: ${failures.slice(0, 3).join(' | ')}; Envoy's stats that changed meanwhile: ${changed.slice(0, 40).join(', ')}` : ''}`,
  );
  t.ok(
    changed.some((c) => /^sds\..*update_success/.test(c)),
    `Envoy took the rotations over SDS (${changed.filter((c) => c.startsWith('sds.')).join(', ')})`,
  );
  t.same(
    changed.filter((c) =>
      /listener_manager\.(lds\.update_success|listener_(modified|added|removed))|cluster_manager\.(cds\.update_success|cluster_modified)/.test(
        c,
      ),
    ),
    [],
    'a rotation changes only the SDS secrets: no listener or cluster update (none drains)',
  );
  t.ok(ok > 200, `the loop ran (${ok} requests)`);
  t.notSame(
    lastSerials.sort(),
    firstSerials.sort(),
    `Envoy's certificate serials changed (${firstSerials.join(',')} -> ${lastSerials.join(',')})`,
  );
  t.ok(apiSerialsSeen.size >= 3, `fresh TLS connections saw ${apiSerialsSeen.size} api serials in 60 s (at least two rotations)`);
  const state = n.agent.dataPlane?.status().identity as { workloads: Array<{ spiffeId: string; serial?: string }> };
  const apiNow = state.workloads.find((w) => w.spiffeId === API)?.serial?.toUpperCase();
  t.ok(apiNow !== undefined && lastSerials.includes(apiNow), 'Envoy holds the SVID the agent holds now');
});
