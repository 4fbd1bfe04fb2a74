/**
 * The transition table against a model of the world, over 1,500
 * random event orders from fixed seeds: spawns that succeed, fail or are
 * aborted, epochs that become ready, time out or crash at any time,
 * validations, drains, timers, and start(), reload() and stop() called at
 * random moments. Checked after every step: every live process is known to
 * the state (or already being killed), so stop() can reach it. Checked at the
 * end, after a stop() at a random moment and all outcomes delivered in a
 * random order: the phase is `stopped`, no process is left, and every start(),
 * reload() and stop() got its answer.
 */
import t from 'tap';
import { type Effect, initialState, type SupervisorEvent, type SupervisorState } from '../../../agent/envoy/supervisor-state.js';
import { transition } from '../../../agent/envoy/supervisor-table.js';
import { mulberry32 } from '../../support/prng.js';

const SETTINGS = { bootstrap: { a: 0 }, binary: '/usr/bin/envoy', binaryId: '1:1:1' };
const POLICY = { initialMs: 100, maxMs: 1_000, stableAfterMs: 30_000 };

/** Process ids the state knows, in any phase. */
function known(s: SupervisorState): Set<number> {
  const ids = new Set(s.retiring.map((p) => p.id));
  const add = (p?: { id: number }) => p && ids.add(p.id);
  if (s.phase === 'starting') add(s.proc);
  if (s.phase === 'running') add(s.proc);
  if (s.phase === 'validating' && !s.procExit) add(s.proc);
  if (s.phase === 'hot-restarting') {
    if (!s.parentExit) add(s.parent);
    add(s.child);
  }
  if (s.phase === 'cold-restarting') add(s.old);
  if (s.phase === 'draining') for (const p of s.procs) add(p);
  return ids;
}

/** Phases and cells the scenarios went through, so the test cannot pass vacuously. */
const visited = new Set<string>();

function scenario(seed: number): string | undefined {
  const rng = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)] as T;
  let s: SupervisorState = initialState(SETTINGS, POLICY);
  let now = 0;
  const live = new Set<number>();
  const dying = new Set<number>();
  const aborted = new Set<number>();
  const timers = new Set<number>();
  const pending: Array<() => SupervisorEvent | undefined> = [];
  let startWaiting = 0;
  let stopWaiting = 0;
  let reloadOpen = false;
  let problem: string | undefined;

  const die = (id: number): SupervisorEvent | undefined => {
    if (!live.delete(id)) return undefined;
    dying.delete(id);
    return { kind: 'exited', id, code: null, signal: 'SIGTERM', at: now };
  };
  const kill = (id: number) => {
    if (!live.has(id) || dying.has(id)) return;
    dying.add(id);
    pending.push(() => die(id));
  };
  const handle = (e: Effect) => {
    if (e.kind === 'spawn') {
      pending.push(() => {
        if ((aborted.has(e.id) && rng() < 0.5) || rng() < 0.1) return { kind: 'spawn-failed', id: e.id, reason: 'no', at: now };
        live.add(e.id);
        return { kind: 'spawned', id: e.id, pid: e.id, at: now };
      });
    } else if (e.kind === 'abort-spawn' || e.kind === 'abort-validate') aborted.add(e.id);
    else if (e.kind === 'await-admin') {
      pending.push(() => {
        if (!live.has(e.id)) return undefined;
        return rng() < 0.85
          ? { kind: 'admin-ready', id: e.id, address: `a${e.id}`, at: now }
          : { kind: 'admin-timeout', id: e.id, reason: 'slow', at: now };
      });
    } else if (e.kind === 'validate')
      pending.push(() => ({ kind: 'validated', id: e.id, ok: !aborted.has(e.id) && rng() < 0.8, output: '', at: now }));
    else if (e.kind === 'kill') kill(e.id);
    else if (e.kind === 'terminate') e.ids.forEach(kill);
    else if (e.kind === 'drain') pending.push(() => ({ kind: 'drained', id: e.id, at: now }));
    else if (e.kind === 'probe-admin') pending.push(() => ({ kind: 'admin-probed', id: e.id, answers: rng() < 0.5, at: now }));
    else if (e.kind === 'set-timer') {
      timers.add(e.timer);
      pending.push(() => (timers.delete(e.timer) ? { kind: 'backoff-over', timer: e.timer, at: now } : undefined));
    } else if (e.kind === 'cancel-timer') timers.delete(e.timer);
    else if (e.kind === 'remove-shm') pending.push(() => ({ kind: 'shm-removed', at: now }));
    else if (e.kind === 'settle-start') startWaiting = 0;
    else if (e.kind === 'settle-reload') reloadOpen = false;
    else if (e.kind === 'settle-stop') stopWaiting = 0;
  };
  const apply = (event: SupervisorEvent) => {
    const step = transition(s, event);
    visited.add(`${s.phase} ${event.kind} ${step.outcome}`);
    if (step.outcome === 'rejected') {
      if (event.kind === 'start') startWaiting--;
      else problem ??= `${event.kind} rejected in ${s.phase}: ${step.reason}`;
    }
    s = step.state;
    step.effects.forEach(handle);
    const strays = [...live].filter((id) => !known(s).has(id) && !dying.has(id));
    if (strays.length > 0) problem ??= `after ${event.kind}: processes ${strays} are unknown to the ${s.phase} state`;
  };
  const deliver = () => {
    const i = Math.floor(rng() * pending.length);
    const [make] = pending.splice(i, 1);
    const event = make?.();
    if (event) apply(event);
  };

  const stopAt = Math.floor(rng() * 60);
  for (let step = 0; step < 60 && problem === undefined; step++) {
    now += Math.floor(rng() * 3) * 20_000;
    if (step === stopAt) {
      stopWaiting++;
      apply({ kind: 'stop', at: now });
    }
    const roll = rng();
    if (roll < 0.6 && pending.length > 0) deliver();
    else if (roll < 0.7 && live.size > 0) {
      const crashed = die(pick([...live]));
      if (crashed) apply(crashed);
    } else if (roll < 0.8) {
      startWaiting++;
      apply({ kind: 'start', at: now });
    } else if (roll < 0.9 && !reloadOpen) {
      reloadOpen = true;
      apply({ kind: 'reload', next: { ...SETTINGS, bootstrap: { a: step } }, at: now });
    }
  }
  stopWaiting++;
  apply({ kind: 'stop', at: now });
  for (let guard = 0; pending.length > 0 && guard < 10_000; guard++) deliver();
  if (problem) return problem;
  if (s.phase !== 'stopped') return `ended ${s.phase}`;
  if (live.size > 0) return `processes left: ${[...live]}`;
  if (startWaiting > 0 || stopWaiting > 0 || reloadOpen)
    return `unanswered: start ${startWaiting}, stop ${stopWaiting}, reload ${reloadOpen}`;
  return undefined;
}

t.test('stop() at a random moment of random event orders leaves nothing and answers everyone', async (t) => {
  const failures: string[] = [];
  for (let seed = 1; seed <= 1_500; seed++) {
    const problem = scenario(seed);
    if (problem !== undefined) failures.push(`seed ${seed}: ${problem}`);
  }
  t.same(failures.slice(0, 10), [], '1500 scenarios');
  const phases = new Set([...visited].map((v) => v.split(' ')[0]));
  t.same([...phases].sort(), ['backoff', 'cold-restarting', 'draining', 'hot-restarting', 'running', 'starting', 'stopped', 'validating']);
  const stops = [...visited].filter((v) => v.endsWith('stop applied')).map((v) => v.split(' ')[0]);
  t.same(stops.sort(), [...phases].sort(), 'stop() came in every phase');
  // A floor, not a target: the random runs must keep reaching most cells of the table (about 50 today).
  t.ok(visited.size >= 45, `${visited.size} distinct (phase, event, outcome) cells were exercised`);
});
