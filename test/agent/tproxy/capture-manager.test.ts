/**
 * The capture lifecycle with a fake clock, a fake Envoy readiness and rules
 * kept in memory: install once Envoy is ready (nothing before), removal
 * recorded before the install (a stop during it removes), drift repaired,
 * the failure policy (open lifts and restores, closed keeps), stale rules of
 * an earlier run replaced, removal on stop, reinstall when workloads change.
 */
import t, { type Test } from 'tap';
import { transparentProxySchema } from '../../../agent/config/schema.js';
import { type CaptureRules, createCaptureManager, type RulesInspection } from '../../../agent/tproxy/capture-manager.js';
import type { CaptureFacts, RuleSet } from '../../../agent/tproxy/rules.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { createLogger } from '../../../lib/logger.js';
import { SideEffects } from '../../../lib/side-effects.js';
import { FakeClock } from '../../fakes/clock.js';

/** Rules in memory: the "tables" hold rendered lines; install replaces ours in one step. */
class MemoryRules implements CaptureRules {
  readonly backend = 'nft' as const;
  lines = new Set<string>();
  calls: string[] = [];
  /** When set, install waits for it (a stop arriving mid-install). */
  gate: Promise<void> | undefined;
  failNext: Error | undefined;

  async facts(workloads: readonly Workload[]): Promise<CaptureFacts> {
    this.calls.push('facts');
    return {
      envoyUid: 15337,
      envoyGid: 15337,
      agentUid: 0,
      inboundPorts: workloads.map((w) => w.port).sort((a, b) => a - b),
      excludeAddresses: [],
      excludeUids: [],
      ipv6: false,
    };
  }
  build(facts: CaptureFacts): RuleSet {
    const rule = (chain: string, match: string[], comment: string) =>
      ({ table: 'nat', chain, family: 'ipv4', match, target: ['-j', 'RETURN'], comment }) as const;
    return {
      chains: [{ table: 'nat', name: 'MESH_INBOUND', family: 'ipv4' }],
      rules: [
        rule('PREROUTING', ['-p', 'tcp'], 'inbound'),
        ...facts.inboundPorts.map((p) => rule('MESH_INBOUND', ['--dport', String(p)], `port ${p}`)),
      ],
    };
  }
  render(set: RuleSet): string[] {
    return set.rules.map((r) => `-A ${r.chain} ${r.match.join(' ')} ${r.target.join(' ')} # ${r.comment}`);
  }
  async install(set: RuleSet): Promise<void> {
    this.calls.push('install');
    if (this.gate !== undefined) await this.gate;
    if (this.failNext !== undefined) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
    this.lines = new Set(this.render(set));
  }
  async inspect(set: RuleSet): Promise<RulesInspection> {
    this.calls.push('inspect');
    const want = this.render(set);
    return {
      expected: want.length,
      installed: this.lines.size,
      missing: want.filter((l) => !this.lines.has(l)),
      unexpected: [...this.lines].filter((l) => !want.includes(l)),
    };
  }
  async remove(): Promise<void> {
    this.calls.push('remove');
    this.lines.clear();
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

function setup(t: Test, config: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const rules = new MemoryRules();
  const envoy = new FakeEnvoy();
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, clock });
  const journal = new SideEffects(log);
  const manager = createCaptureManager({
    config: transparentProxySchema.parse({ enabled: true, checkInterval: '10s', ...config }),
    rules,
    envoy,
    clock,
    log,
  });
  manager.setWorkloads([workload('api', 8080)]);
  t.teardown(() => journal.unwind());
  return { clock, rules, envoy, manager, journal, lines };
}

t.test('installs once Envoy is ready, nothing before', async (t) => {
  const { clock, rules, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  await clock.advanceAsync(30_000);
  await manager.settled();
  t.equal(rules.lines.size, 0, 'no rule while Envoy is not ready');
  t.equal(manager.status().state, 'pending');
  t.notOk(rules.calls.includes('install'));
  envoy.set(true);
  await manager.settled();
  t.equal(rules.lines.size, 2);
  const s = manager.status();
  t.equal(s.state, 'installed');
  t.same(s.rules, { expected: 2, installed: 2 });
  t.same(s.inboundPorts, [8080]);
  t.equal(s.backend, 'nft');
});

t.test('the removal is in the journal before the install: a stop during it removes our rules', async (t) => {
  const { rules, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  t.same(
    journal.summary().map((e) => e.name),
    ['traffic capture rules'],
  );
  let open: () => void = () => {};
  rules.gate = new Promise<void>((r) => {
    open = r;
  });
  envoy.set(true);
  await FakeClock.flush();
  t.ok(rules.calls.includes('install'), 'install under way');
  const unwound = journal.unwind();
  open();
  await unwound;
  t.equal(rules.lines.size, 0, 'nothing of ours left');
  t.equal(rules.calls.at(-1), 'remove');
  t.equal(manager.status().state, 'removed');
});

t.test('drift is found at the check interval and repaired', async (t) => {
  const { clock, rules, envoy, manager, journal, lines } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  const deleted = [...rules.lines][1] as string;
  rules.lines.delete(deleted);
  rules.lines.add('-A MESH_INBOUND --dport 1 -j RETURN # by hand');
  await clock.advanceAsync(10_000);
  await manager.settled();
  const s = manager.status();
  t.equal(s.state, 'installed');
  t.equal(s.repairs, 1);
  t.same(s.rules, { expected: 2, installed: 2 });
  t.ok(rules.lines.has(deleted), 'the deleted rule is back');
  t.equal(s.lastCheckAt, clock.now());
  const warn = lines.map((l) => JSON.parse(l)).find((r) => r.msg.includes('drifted'));
  t.same(warn.missing, [deleted]);
  t.same(warn.unexpected, ['-A MESH_INBOUND --dport 1 -j RETURN # by hand']);
});

t.test('a failed repair shows as failed with its code, and the next check repairs', async (t) => {
  const { clock, rules, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  rules.lines.clear();
  rules.failNext = new Error('iptables-restore: line 3 failed');
  await clock.advanceAsync(10_000);
  await manager.settled();
  t.equal(manager.status().state, 'failed');
  t.match(manager.status().error, { code: 'MESH_E_TPROXY_IPTABLES', message: /line 3 failed/ });
  await clock.advanceAsync(10_000);
  await manager.settled();
  t.equal(manager.status().state, 'installed');
  t.equal(manager.status().error, undefined);
  t.equal(rules.lines.size, 2);
});

t.test('failurePolicy open lifts capture when Envoy goes not ready, and restores it', async (t) => {
  const { clock, rules, envoy, manager, journal, lines } = setup(t, { failurePolicy: 'open' });
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  t.equal(rules.lines.size, 2);
  envoy.set(false);
  await manager.settled();
  t.equal(rules.lines.size, 2, 'a short blip lifts nothing');
  await clock.advanceAsync(999);
  t.equal(rules.lines.size, 2);
  await clock.advanceAsync(1);
  await manager.settled();
  t.equal(rules.lines.size, 0, 'lifted within 2 s');
  const s = manager.status();
  t.equal(s.state, 'lifted');
  t.match(s.warning, /LIFTED/);
  t.ok(
    lines.some((l) => l.includes('CAPTURE LIFTED') && l.includes('"level":"warn"')),
    'a loud warning in the log',
  );
  envoy.set(true);
  await manager.settled();
  t.equal(rules.lines.size, 2, 'restored');
  t.equal(manager.status().state, 'installed');
  t.equal(manager.status().warning, undefined);
});

t.test('failurePolicy closed keeps capture while Envoy is down', async (t) => {
  const { clock, rules, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  envoy.set(false);
  await clock.advanceAsync(60_000);
  await manager.settled();
  t.equal(rules.lines.size, 2);
  t.equal(manager.status().state, 'installed');
  t.notOk(rules.calls.includes('remove'));
});

t.test('stale rules of a crashed run are found at start and replaced once Envoy is ready', async (t) => {
  const { rules, envoy, manager, journal, lines } = setup(t);
  rules.lines = new Set(['-A PREROUTING -p tcp -j RETURN # inbound', '-A MESH_INBOUND --dport 9 -j RETURN # port 9']);
  await manager.start(journal);
  await manager.settled();
  t.equal(rules.lines.size, 2, 'closed: kept until Envoy is ready');
  t.match(manager.status(), { state: 'pending', warning: /earlier run/ });
  envoy.set(true);
  await manager.settled();
  t.same([...rules.lines].sort(), ['-A MESH_INBOUND --dport 8080 -j RETURN # port 8080', '-A PREROUTING -p tcp -j RETURN # inbound']);
  t.notOk(rules.calls.includes('remove'), 'replaced by the install itself, never removed first');
  t.ok(lines.some((l) => l.includes('replacing the rules of an earlier run')));
});

t.test('with failurePolicy open, stale rules go at once', async (t) => {
  const { rules, manager, journal } = setup(t, { failurePolicy: 'open' });
  rules.lines = new Set(['-A MESH_INBOUND --dport 9 -j RETURN # port 9']);
  await manager.start(journal);
  await manager.settled();
  t.equal(rules.lines.size, 0);
  t.equal(manager.status().state, 'pending');
});

t.test('removed on stop; a second stop changes nothing', async (t) => {
  const { rules, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  await journal.unwind();
  t.equal(rules.lines.size, 0);
  t.equal(manager.status().state, 'removed');
  const before = rules.calls.length;
  await manager.stop();
  t.equal(rules.calls.length, before);
  envoy.set(false);
  envoy.set(true);
  await manager.settled();
  t.equal(rules.lines.size, 0, 'nothing installed after stop');
});

t.test('new workloads: facts resolved again and the rules reinstalled', async (t) => {
  const { rules, envoy, manager, journal } = setup(t);
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  manager.setWorkloads([workload('api', 8080), workload('web', 9090)]);
  await manager.settled();
  t.ok(rules.lines.has('-A MESH_INBOUND --dport 9090 -j RETURN # port 9090'));
  t.same(manager.status().inboundPorts, [8080, 9090]);
  t.equal(manager.status().state, 'installed');
});

t.test('the DNS proxy starts before the rules and stops after them, both in the journal', async (t) => {
  const clock = new FakeClock();
  const rules = new MemoryRules();
  const envoy = new FakeEnvoy();
  const order: string[] = [];
  const log = createLogger({ sink: { write: () => {} }, clock });
  const journal = new SideEffects(log);
  const origRemove = rules.remove.bind(rules);
  rules.remove = async () => {
    order.push('rules removed');
    await origRemove();
  };
  const manager = createCaptureManager({
    config: transparentProxySchema.parse({ enabled: true, dns: { capture: true } }),
    rules,
    envoy,
    clock,
    log,
    startDns: async () => {
      order.push('dns started');
      return { stop: async () => void order.push('dns stopped') };
    },
  });
  await manager.start(journal);
  envoy.set(true);
  await manager.settled();
  t.same(
    journal.summary().map((e) => e.name),
    ['DNS proxy', 'traffic capture rules'],
  );
  await journal.unwind();
  t.same(order, ['dns started', 'rules removed', 'dns stopped']);
});
