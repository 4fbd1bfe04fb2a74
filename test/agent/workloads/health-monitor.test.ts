import t from 'tap';
import type { CheckResult } from '../../../agent/workloads/health-check.js';
import { createHealthMonitor } from '../../../agent/workloads/health-monitor.js';
import { parseWorkload } from '../../../agent/workloads/load.js';
import type { Workload, WorkloadCheck } from '../../../agent/workloads/workload.js';
import { FakeClock } from '../../fakes/clock.js';
import { flush } from '../../support/flush.js';

const ctx = { trustDomain: 'example.org', inboundPortOffset: 10000 };
const wl = (text: string) => parseWorkload('/w/x.yaml', text, ctx) as Workload;

t.test('runs checks on their interval and reports changes only', async (t) => {
  const clock = new FakeClock();
  const status = new Map<string, CheckResult['status']>([['web', 'passing']]);
  const runs: string[] = [];
  const changes: Array<[string, string]> = [];
  const monitor = createHealthMonitor(
    clock,
    async (c: WorkloadCheck) => {
      const name = String(c.target).includes('8080') ? 'web' : 'api';
      runs.push(name);
      return { status: status.get(name) ?? 'critical', output: name };
    },
    (name, r) => changes.push([name, r.status]),
  );
  const web = wl('name: web\nport: 8080\ncheck: { tcp: "127.0.0.1:8080", interval: 5s }\n');
  const api = wl('name: api\nport: 9090\ncheck: { tcp: "127.0.0.1:9090", interval: 1s }\n');
  const none = wl('name: db\nport: 5432\n');
  monitor.set([web, api, none]);
  t.equal(monitor.results().get('web')?.status, 'critical', 'critical until checked');
  clock.advance(0);
  await flush();
  t.same(changes, [['web', 'passing']], 'api stays critical: no change reported');
  clock.advance(1000);
  await flush();
  t.same(runs.filter((r) => r === 'api').length, 2);
  status.set('web', 'critical');
  clock.advance(5000);
  await flush();
  t.same(changes.at(-1), ['web', 'critical']);
  monitor.set([api]);
  t.notOk(monitor.results().has('web'), 'removed');
  const changed = wl('name: api\nport: 9090\ncheck: { tcp: "127.0.0.1:9090", interval: 2s }\n');
  monitor.set([changed]);
  t.equal(monitor.results().get('api')?.status, 'critical', 'restarted with the new check');
  monitor.stop();
  const before = runs.length;
  clock.advance(10000);
  await flush();
  t.equal(runs.length, before, 'nothing runs after stop');
});
