/**
 * `mesh-agent doctor` on a host with capture on (test/support/tproxy-world.ts:
 * network namespaces, the real agent as root with its Envoy, iptables-nft):
 * the iptables check passes (backend nft, the agent has CAP_NET_ADMIN) and
 * capture drift passes; after our MESH_OUTPUT chain is flushed by hand (the
 * agent's own drift repair slowed to 1 h, so the drift stays), capture-drift
 * fails naming the missing rules, and doctor exits 1.
 */
import t from 'tap';
import type { DoctorReport } from '../../agent/doctor/runner.js';
import { privilegedSkipReason } from '../support/netns.js';
import { dist } from '../support/netns-peers.js';
import { startTproxyWorld } from '../support/tproxy-world.js';
import { waitFor } from '../support/wait.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

t.test('doctor with capture on: iptables and capture drift, then a flushed chain', { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const w = await startTproxyWorld({ prefix: 'mesh-doctor-' });
  t.teardown(() => w.stop());
  await w.web.start({ backend: 'nft', checkInterval: '1h' });
  await waitFor(async () => ((await w.web.status()).transparentProxy?.state === 'installed' ? true : undefined), {
    timeoutMs: 60_000,
    what: 'capture installed on a',
  });
  const doctor = async () => {
    const r = await w.a.exec(process.execPath, [dist('agent', 'main.js'), 'doctor', '--config', w.web.configFile, '--json'], {
      timeoutMs: 60_000,
    });
    return { code: r.code, report: JSON.parse(r.stdout) as DoctorReport };
  };
  const check = (r: DoctorReport, id: string) => r.checks.find((c) => c.id === id);

  const healthy = await doctor();
  t.match(check(healthy.report, 'iptables'), { level: 'pass', detail: /^backend nft; the agent \(pid \d+\) has CAP_NET_ADMIN$/ });
  t.match(check(healthy.report, 'capture-drift'), { level: 'pass', detail: /^\d+ rules installed as expected \(backend nft\)$/ });

  const flushed = await w.a.exec('iptables-nft', ['-t', 'nat', '-F', 'MESH_OUTPUT']);
  t.equal(flushed.code, 0, flushed.stderr);
  const drifted = await doctor();
  t.equal(drifted.code, 1, 'exit 1');
  const c = check(drifted.report, 'capture-drift');
  t.match(c, {
    level: 'fail',
    detail: /^capture rules drifted: [1-9]\d* missing, 0 unexpected \(backend nft\)$/,
    fix: /mesh-agent tproxy status/,
  });
  t.ok(
    ((c?.data?.missing ?? []) as string[]).every((line) => line.includes('MESH_OUTPUT')),
    'the missing rules are those of the flushed chain',
  );
});
