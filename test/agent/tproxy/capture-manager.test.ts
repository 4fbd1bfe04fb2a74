/**
 * The capture lifecycle with a fake clock, a fake Envoy readiness and the
 * real rules over the shared FakeIptablesRunner: install once Envoy is ready (nothing before), removal
 * recorded before the install (a stop during it removes), drift repaired,
 * the failure policy (open lifts and restores, closed keeps), stale rules of
 * an earlier run replaced, removal on stop, reinstall when workloads change.
 */
import t, { type Test } from 'tap';
import { type TransparentProxyConfig, transparentProxySchema } from '../../../agent/config/schema.js';
import { type CaptureRules, createCaptureManager } from '../../../agent/tproxy/capture-manager.js';
import { realCaptureRules } from '../../../agent/tproxy/capture-rules.js';
import type { IpFamily } from '../../../agent/tproxy/iptables-runner.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { createLogger } from '../../../lib/logger.js';
import { SideEffects } from '../../../lib/side-effects.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeIptablesRunner } from '../../fakes/iptables.js';
import { FACTS } from './tproxy-fixtures.js';

/**
 * The real rules (buildRuleSet, installRules, inspectRules, removeRules) over
 * the shared FakeIptablesRunner, with fixed facts (the workloads' ports); a
 * gate holds restores back (a stop arriving mid-install).
 */
class Tables {
  readonly runner = new FakeIptablesRunner({ backend: 'nft' });
  gate: Promise<void> | undefined;
  readonly rules: CaptureRules;

  constructor(config: TransparentProxyConfig) {
    const runner = this.runner;
    const gated = {
      backend: runner.backend,
      save: (family: IpFamily, table: string) => runner.save(family, table),
      restore: async (family: IpFamily, input: string) => {
        if (this.gate !== undefined) await this.gate;
        await runner.restore(family, input);
      },
    };
    this.rules = realCaptureRules(config, gated, async (workloads) => ({
      ...FACTS,
      ipv6: false,
      inboundPorts: workloads.map((w) => w.port).sort((x, y) => x - y),
    }));
  }
  /** Our rules in the nat table, as saved. */
  async ours(): Promise<string[]> {
    return (await this.runner.save('ipv4', 'nat')).split('\n').filter((l) => l.startsWith('-A') && l.includes('mesh-agent:'));
  }
  restoreCount(): number {
    return this.runner.restores.length;
  }
}

class FakeEnvoy {
  isReady = false;
  private listeners = new Set<() => void>();
  ready = () => this.isReady;
  onChange = (l: () => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };
  set(ready: boolean) {
    this.isReady = ready;
    for (const l of this.listeners) l();
  }
}

const workload = (name: string, port: number) => ({ name, port }) as unknown as Workload;

function setup(t: Test, config: Record<string, unknown> = {}, startDns?: () => Promise<{ stop(): Promise<void> }>) {
  const clock = new FakeClock();
  const tp = transparentProxySchema().parse({ enabled: true, checkInterval: '10s', ipv6: 'off', ...config });
  const tables = new Tables(tp);
  const envoy = new FakeEnvoy();
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, clock });
  const journal = new SideEffects(log);
  const manager = createCaptureManager({
    config: tp,
    rules: tables.rules,
    envoy,
    clock,
    log,
    ...(startDns === undefined ? {} : { startDns }),
  });
  manager.setWorkloads([workload('api', 8080)]);
  t.teardown(() => journal.unwind());
  return { clock, tables, envoy, manager, journal, lines };
}

t.test('installs once Envoy is ready, nothing before', async (t) => {
  const { clock, tables, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  await clock.advanceAsync(30_000);
  await manager.settled();
  t.same(await tables.ours(), [], 'no rule while Envoy is not ready');
  t.equal(tables.restoreCount(), 0, 'not one restore');
  t.equal(manager.status().state, 'pending');
  envoy.set(true);
  await manager.settled();
  const ours = await tables.ours();
  t.ok(
    ours.some((l) => l.includes('--dport 8080')),
    'the workload port is captured',
  );
  const s = manager.status();
  t.equal(s.state, 'installed');
  t.ok(s.rules.expected > 0);
  t.equal(s.rules.installed, s.rules.expected);
  t.same(s.drift, { missing: [], unexpected: [] });
  t.same(s.inboundPorts, [8080]);
  t.equal(s.backend, 'nft');
});

t.test('the removal is in the journal before the install: a stop during it removes our rules', async (t) => {
  const { tables, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  t.same(
    journal.summary().map((e) => e.name),
    ['traffic capture rules'],
  );
  let open: () => void = () => {};
  tables.gate = new Promise<void>((r) => {
    open = r;
  });
  envoy.set(true);
  await FakeClock.flush();
  t.equal(tables.restoreCount(), 0, 'the install is held at its first restore');
  const unwound = journal.unwind();
  tables.gate = undefined;
  open();
  await unwound;
  t.ok(tables.restoreCount() > 1, 'the install went in, then the removal');
  t.same(await tables.ours(), [], 'nothing of ours left');
  t.equal(manager.status().state, 'removed');
});

t.test('drift is found at the check interval and repaired', async (t) => {
  const { clock, tables, envoy, manager, journal, lines } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  const deleted = (await tables.ours()).find((l) => l.includes('--dport 8080')) as string;
  tables.runner.deleteRule('ipv4', 'nat', deleted);
  t.notOk((await tables.ours()).includes(deleted));
  await clock.advanceAsync(10_000);
  await manager.settled();
  const s = manager.status();
  t.equal(s.state, 'installed');
  t.equal(s.repairs, 1);
  t.equal(s.rules.installed, s.rules.expected);
  t.ok((await tables.ours()).includes(deleted), 'the deleted rule is back');
  t.equal(s.lastCheckAt, clock.now());
  const warn = lines.map((l) => JSON.parse(l)).find((r) => r.msg.includes('drifted'));
  t.equal(warn.missing.length, 1);
  t.match(warn.missing[0], /--dport 8080/);
  await clock.advanceAsync(10_000);
  await manager.settled();
  t.equal(manager.status().repairs, 1, 'no drift, no repair');
});

t.test('a failed repair shows as failed with its code, and the next check repairs', async (t) => {
  const { clock, tables, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  const expected = manager.status().rules.expected;
  for (const line of await tables.ours()) tables.runner.deleteRule('ipv4', 'nat', line);
  tables.runner.failRestores(1, 'iptables-restore: line 3 failed');
  await clock.advanceAsync(10_000);
  await manager.settled();
  t.equal(manager.status().state, 'failed');
  t.match(manager.status().error, { code: 'MESH_E_TPROXY_IPTABLES', message: /line 3 failed/ });
  await clock.advanceAsync(10_000);
  await manager.settled();
  t.equal(manager.status().state, 'installed');
  t.equal(manager.status().error, undefined);
  t.equal(manager.status().rules.installed, expected);
});

t.test('failurePolicy open lifts capture when Envoy goes not ready, and restores it', async (t) => {
  const { clock, tables, envoy, manager, journal, lines } = setup(t, { failurePolicy: 'open' });
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  const installed = await tables.ours();
  envoy.set(false);
  await manager.settled();
  t.same(await tables.ours(), installed, 'a short blip lifts nothing');
  await clock.advanceAsync(999);
  t.same(await tables.ours(), installed);
  await clock.advanceAsync(1);
  await manager.settled();
  t.same(await tables.ours(), [], 'lifted 1 s after Envoy went not ready (within the 2 s promised)');
  const s = manager.status();
  t.equal(s.state, 'lifted');
  t.match(s.warning, /LIFTED/);
  t.ok(
    lines.some((l) => l.includes('CAPTURE LIFTED') && l.includes('"level":"warn"')),
    'a loud warning in the log',
  );
  envoy.set(true);
  await manager.settled();
  t.same(await tables.ours(), installed, 'restored');
  t.equal(manager.status().state, 'installed');
  t.equal(manager.status().warning, undefined);
});

t.test('failurePolicy closed keeps capture while Envoy is down', async (t) => {
  const { clock, tables, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  const installed = await tables.ours();
  const restores = tables.restoreCount();
  envoy.set(false);
  await clock.advanceAsync(60_000);
  await manager.settled();
  t.same(await tables.ours(), installed);
  t.equal(tables.restoreCount(), restores, 'nothing restored meanwhile');
  t.equal(manager.status().state, 'installed');
});

/** The rules an earlier run installed for another workload port (stale after its crash). */
async function seedStale(tables: Tables, config: TransparentProxyConfig): Promise<string[]> {
  const earlier = realCaptureRules(config, tables.runner, async () => ({ ...FACTS, ipv6: false, inboundPorts: [9999] }));
  await earlier.install(earlier.build(await earlier.facts([])));
  const before = tables.restoreCount();
  tables.runner.restores.splice(0, before);
  return tables.ours();
}

t.test('stale rules of a crashed run are found at start and replaced once Envoy is ready', async (t) => {
  const { tables, envoy, manager, journal, lines } = setup(t);
  const stale = await seedStale(tables, transparentProxySchema().parse({ enabled: true, ipv6: 'off' }));
  t.ok(stale.some((l) => l.includes('--dport 9999')));
  await manager.start(journal);
  await manager.settled();
  t.same(await tables.ours(), stale, 'closed: kept until Envoy is ready');
  t.match(manager.status(), { state: 'pending', warning: /earlier run/ });
  envoy.set(true);
  await manager.settled();
  const now = await tables.ours();
  t.ok(now.some((l) => l.includes('--dport 8080')));
  t.notOk(
    now.some((l) => l.includes('--dport 9999')),
    'the stale port is gone',
  );
  t.ok(
    tables.runner.restores.every((r) => !/^-F|^-X/m.test(r.input) || /-A /.test(r.input)),
    'replaced in one transaction, never removed first',
  );
  t.ok(lines.some((l) => l.includes('replacing the rules of an earlier run')));
  t.equal(manager.status().state, 'installed');
});

t.test('with failurePolicy open, stale rules go at once', async (t) => {
  const { tables, manager, journal } = setup(t, { failurePolicy: 'open' });
  await seedStale(tables, transparentProxySchema().parse({ enabled: true, ipv6: 'off' }));
  await manager.start(journal);
  await manager.settled();
  t.same(await tables.ours(), []);
  t.equal(manager.status().state, 'pending');
});

t.test('removed on stop, foreign rules untouched; nothing installed after', async (t) => {
  const { tables, envoy, manager, journal } = setup(t);
  tables.runner.load(
    'ipv4',
    '*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp --dport 25 -j REDIRECT --to-ports 2525\nCOMMIT\n',
  );
  const foreign = await tables.runner.save('ipv4', 'nat');
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  t.not(await tables.runner.save('ipv4', 'nat'), foreign);
  await journal.unwind();
  t.equal(await tables.runner.save('ipv4', 'nat'), foreign, 'exactly what was there before');
  t.equal(manager.status().state, 'removed');
  const restores = tables.restoreCount();
  await manager.stop();
  envoy.set(false);
  envoy.set(true);
  await manager.settled();
  t.equal(tables.restoreCount(), restores, 'a second stop and later Envoy events change nothing');
});

t.test('new workloads: facts resolved again and the rules reinstalled', async (t) => {
  const { tables, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  manager.setWorkloads([workload('api', 8080), workload('web', 9090)]);
  await manager.settled();
  t.ok((await tables.ours()).some((l) => l.includes('--dport 9090')));
  t.same(manager.status().inboundPorts, [8080, 9090]);
  t.equal(manager.status().state, 'installed');
});

t.test('the DNS proxy starts before the rules and stops after them, both in the journal', async (t) => {
  const order: string[] = [];
  const { tables, envoy, manager, journal } = setup(t, { dns: { capture: true } }, async () => {
    order.push(`dns started, ${tables.restoreCount()} restores`);
    return { stop: async () => void order.push(`dns stopped, ${(await tables.ours()).length} rules of ours`) };
  });
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  t.ok(
    (await tables.ours()).some((l) => l.includes('--dport 53')),
    'DNS is captured',
  );
  t.same(
    journal.summary().map((e) => e.name),
    ['DNS proxy', 'traffic capture rules'],
  );
  await journal.unwind();
  t.same(order, ['dns started, 0 restores', 'dns stopped, 0 rules of ours']);
});
