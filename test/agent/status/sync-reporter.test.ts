/**
 * The reporter with the fake clock and a fake link: the first report at
 * once, nothing while the report is unchanged, a changed report on the next
 * check (or after poke), a heartbeat at the interval the control plane
 * answered, retries with backoff after a failure, a control plane without the
 * service asked once per heartbeat, and a new client sending at once.
 */
import t from 'tap';
import type { ControlPlaneClient } from '../../../agent/identity/cp-client.js';
import { createSyncReporter } from '../../../agent/status/sync-reporter.js';
import { MeshError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/logger.js';
import type { NodeStatusReportWire } from '../../../lib/proto/node-status.js';
import { FakeClock } from '../../fakes/clock.js';
import { report } from '../../support/node-report.js';

const quiet = createLogger({ sink: { write: () => {} } });
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function world() {
  const clock = new FakeClock();
  const sent: NodeStatusReportWire[] = [];
  let fail: MeshError | undefined;
  const clientListeners = new Set<() => void>();
  const client = {
    reportStatus: async (r: NodeStatusReportWire) => {
      if (fail !== undefined) throw fail;
      sent.push(r);
      return { heartbeatMs: 5_000 };
    },
  } as unknown as ControlPlaneClient;
  let current = report();
  const reporter = createSyncReporter({
    link: {
      client: () => client,
      onClient: (l) => {
        clientListeners.add(l);
        return () => clientListeners.delete(l);
      },
    },
    report: () => ({ ...current, sent_at_ms: clock.now() }),
    clock,
    log: quiet,
    random: () => 0.5,
  });
  const step = async (ms: number) => {
    clock.advance(ms);
    await flush();
  };
  return {
    clock,
    sent,
    reporter,
    step,
    set: (r: NodeStatusReportWire) => {
      current = r;
    },
    failWith: (e: MeshError | undefined) => {
      fail = e;
    },
    newClient: () => {
      for (const l of clientListeners) l();
    },
  };
}

t.test('first report at once, changes on the next check, heartbeat at the answered interval', async (t) => {
  const w = world();
  w.reporter.start();
  await w.step(0);
  t.equal(w.sent.length, 1, 'the first report goes at once');
  await w.step(1_000);
  await w.step(1_000);
  t.equal(w.sent.length, 1, 'unchanged: nothing more before the heartbeat');
  w.set(report({ policy_revision: 5 }));
  await w.step(1_000);
  t.equal(w.sent.length, 2, 'a change goes on the next check');
  t.equal(w.sent[1]?.policy_revision, 5);
  w.set(report({ policy_revision: 6 }));
  w.reporter.poke();
  await w.step(50);
  t.equal(w.sent.length, 3, 'poke: checked at once');
  for (let i = 0; i < 4; i++) await w.step(1_000);
  t.equal(w.sent.length, 3, '4 s later: no heartbeat yet (the control plane asked for 5 s)');
  await w.step(2_000);
  t.equal(w.sent.length, 4, 'the heartbeat, unchanged, on the first check 5 s after the last report');
  t.equal(w.sent[3]?.sent_at_ms, w.sent[2] === undefined ? 0 : w.sent[2].sent_at_ms + 5_950, 'checks run each second');
  t.equal(w.reporter.state().heartbeatMs, 5_000);
  w.reporter.stop();
  await w.step(60_000);
  t.equal(w.sent.length, 4, 'nothing after stop');
});

t.test('a failure is retried with backoff; unsupported is asked once per heartbeat; a new client sends at once', async (t) => {
  const w = world();
  w.failWith(new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'down'));
  w.reporter.start();
  await w.step(0);
  t.equal(w.reporter.state().lastError, 'down');
  w.failWith(undefined);
  await w.step(200);
  t.equal(w.sent.length, 0, 'not before the backoff (375 ms at jitter 0.5)');
  await w.step(1_000);
  t.equal(w.sent.length, 1, 'retried after the backoff');
  t.equal(w.reporter.state().lastError, undefined);

  w.failWith(new MeshError('MESH_E_CONTROLPLANE_UNSUPPORTED', 'no such service'));
  w.set(report({ policy_revision: 9 }));
  await w.step(1_000);
  for (let i = 0; i < 4; i++) await w.step(1_000);
  t.equal(w.reporter.state().lastError, 'no such service');
  w.failWith(undefined);
  await w.step(1_000);
  t.equal(w.sent.length, 1, 'an unsupported control plane is asked again only after a heartbeat');
  w.newClient();
  await w.step(50);
  t.equal(w.sent.length, 2, 'a new client: sent at once');
  w.newClient();
  await w.step(50);
  t.equal(w.sent.length, 3, 'even unchanged: the new connection may be another control plane');
  w.reporter.stop();
});
