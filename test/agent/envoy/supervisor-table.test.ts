/**
 * The supervisor's transition table, exhaustively: every phase (in each of
 * its sub-states) against every event, both with the ids that phase waits for
 * and with an unknown id. Each cell's outcome is written out below, so the
 * matrix is the specification: A applied, K applied by killing the process (a
 * spawn nobody waits for), I ignored (state and effects unchanged), R rejected
 * (the caller gets an error).
 */
import t from 'tap';
import { type EventKind, initialState, type SupervisorEvent, type SupervisorState } from '../../../agent/envoy/supervisor-state.js';
import { TABLE, transition } from '../../../agent/envoy/supervisor-table.js';

const SETTINGS = { bootstrap: { a: 1 }, binary: '/usr/bin/envoy', binaryId: '1:1:1' };
const next = (n: number) => ({ ...SETTINGS, bootstrap: { a: n } });
const POLICY = { initialMs: 100, maxMs: 1_000, stableAfterMs: 30_000 };
const KINDS: EventKind[] = [
  'start',
  'stop',
  'reload',
  'spawned',
  'spawn-failed',
  'admin-ready',
  'admin-timeout',
  'exited',
  'validated',
  'drained',
  'backoff-over',
  'admin-probed',
  'shm-removed',
];
const UNKNOWN = 999;

function eventOf(kind: EventKind, id: number, at = 5_000): SupervisorEvent {
  switch (kind) {
    case 'start':
    case 'stop':
    case 'shm-removed':
      return { kind, at };
    case 'reload':
      return { kind, next: next(9), at };
    case 'spawned':
      return { kind, id, pid: 500 + id, at };
    case 'spawn-failed':
      return { kind, id, reason: 'spawn envoy ENOENT', at };
    case 'admin-ready':
      return { kind, id, address: `127.0.0.1:${15000 + id}`, at };
    case 'admin-timeout':
      return { kind, id, reason: 'timed out', at };
    case 'exited':
      return { kind, id, code: 1, signal: null, at };
    case 'validated':
      return { kind, id, ok: true, output: '', at };
    case 'drained':
    case 'admin-probed':
      return kind === 'drained' ? { kind, id, at } : { kind, id, answers: true, at };
    case 'backoff-over':
      return { kind, timer: id, at };
  }
}

/** Applies events in order; each must be applied. */
function drive(state: SupervisorState, ...events: Array<[EventKind, number?]>): SupervisorState {
  let s = state;
  for (const [kind, id] of events) {
    const step = transition(s, kind === 'reload' ? { kind, next: next(s.lastId + 10), at: 1_000 } : eventOf(kind, id ?? UNKNOWN, 1_000));
    if (step.outcome !== 'applied') throw new Error(`fixture: ${kind} ${id} was ${step.outcome} in ${s.phase}`);
    s = step.state;
  }
  return s;
}

const stopped = initialState(SETTINGS, POLICY);
const launching = drive(stopped, ['start']);
const spawned = drive(launching, ['spawned', 1]);
const running = drive(spawned, ['admin-ready', 1]);
const validating = drive(running, ['reload']);
const hotLaunching = drive(validating, ['validated', 2]);
const hotConfirming = drive(hotLaunching, ['spawned', 3]);
const hotProbing = drive(hotConfirming, ['exited', 3]);
const cold = drive(hotProbing, ['admin-probed', 1], ['reload'], ['validated', 4]);
const backoff = drive(running, ['exited', 1]);
const backoffRetiring = drive(hotConfirming, ['admin-ready', 3], ['exited', 3]);
const drainingDrain = drive(running, ['stop']);
const drainingLaunching = drive(launching, ['stop']);
const drainingValidating = drive(validating, ['stop']);
const drainingRemoving = drive(drainingDrain, ['drained', 1], ['exited', 1]);

type Own = Partial<Record<EventKind, number>>;
//                                                                      start stop reload spawned spawn-failed admin-ready admin-timeout exited validated drained backoff-over admin-probed shm-removed
const MATRIX: Array<[string, SupervisorState, Own, string]> = [
  ['stopped', stopped, {}, 'A A A K I I I I I I I I I'],
  ['starting, launching', launching, { spawned: 1, 'spawn-failed': 1 }, 'A A A A A I I I I I I I I'],
  ['starting, spawned', spawned, { 'admin-ready': 1, 'admin-timeout': 1, exited: 1 }, 'A A A K I A A A I I I I I'],
  ['running', running, { exited: 1 }, 'A A A K I I I A I I I I I'],
  ['validating', validating, { exited: 1, validated: 2 }, 'A A R K I I I A A I I I I'],
  ['hot-restarting, launching', hotLaunching, { spawned: 3, 'spawn-failed': 3, exited: 1 }, 'A A R A A I I A I I I I I'],
  ['hot-restarting, confirming', hotConfirming, { 'admin-ready': 3, 'admin-timeout': 3, exited: 3 }, 'A A R K I A A A I I I I I'],
  ['hot-restarting, probing', hotProbing, { exited: 1, 'admin-probed': 1 }, 'A A R K I I I A I I I A I'],
  ['cold-restarting', cold, { exited: 1 }, 'A A R K I I I A I I I I I'],
  ['backoff', backoff, { 'backoff-over': 2 }, 'A A A K I I I I I I A I I'],
  ['backoff, old epoch retiring', backoffRetiring, { exited: 1, 'backoff-over': 4 }, 'A A A K I I I A I I A I I'],
  ['draining, drain', drainingDrain, { exited: 1, drained: 1 }, 'R A A K I I I A I A I I I'],
  ['draining, spawn under way', drainingLaunching, { spawned: 1, 'spawn-failed': 1 }, 'R A A A A I I I I I I I I'],
  ['draining, validation under way', drainingValidating, { exited: 1, validated: 2, drained: 1 }, 'R A A K I I I A A A I I I'],
  ['draining, removing shared memory', drainingRemoving, {}, 'R A A K I I I I I I I I A'],
];

t.test('the table has a cell for every phase and event', async (t) => {
  for (const [phase, row] of Object.entries(TABLE)) t.same(Object.keys(row).sort(), [...KINDS].sort(), phase);
  const phases = new Set(MATRIX.map(([, s]) => s.phase));
  t.same([...phases].sort(), Object.keys(TABLE).sort(), 'the matrix covers every phase');
});

for (const [name, state, own, row] of MATRIX) {
  t.test(`${name}: every event`, async (t) => {
    t.equal(state.phase, name.split(',')[0], 'the fixture is in its phase');
    const expected = row.split(' ');
    KINDS.forEach((kind, i) => {
      const step = transition(state, eventOf(kind, own[kind] ?? UNKNOWN));
      const got =
        step.outcome === 'applied' && step.effects.some((e) => e.kind === 'kill') && kind === 'spawned'
          ? 'K'
          : step.outcome[0]?.toUpperCase();
      t.equal(got, expected[i], `${kind}${own[kind] === undefined ? '' : ` ${own[kind]}`}`);
      if (step.outcome !== 'applied') {
        t.equal(step.state, state, `${kind}: ${step.outcome}, the state is unchanged`);
        t.same(step.effects, [], `${kind}: no effects`);
        t.ok(step.reason, `${kind}: with a reason (${step.reason})`);
      }
    });
  });

  t.test(`${name}: an event about an unknown id is ignored (a spawn is killed)`, async (t) => {
    for (const kind of KINDS.filter((k) => !['start', 'stop', 'reload', 'shm-removed'].includes(k))) {
      const step = transition(state, eventOf(kind, UNKNOWN));
      if (kind === 'spawned') t.same(step.effects.at(-1), { kind: 'kill', id: UNKNOWN }, 'spawned: killed');
      else t.equal(step.outcome, 'ignored', kind);
    }
  });
}

t.test('a few cells, in detail', async (t) => {
  const crash = transition(running, eventOf('exited', 1, 1_000));
  t.equal(crash.state.phase, 'backoff');
  t.same(
    crash.effects.filter((e) => e.kind === 'set-timer'),
    [{ kind: 'set-timer', timer: 2, ms: 100 }],
  );
  const stop = transition(running, eventOf('stop', 0));
  t.same(
    stop.effects.map((e) => e.kind),
    ['drain'],
    'a serving epoch with an admin API is drained first',
  );
  const stopLaunching = transition(launching, eventOf('stop', 0));
  t.same(
    stopLaunching.effects.map((e) => e.kind),
    ['settle-start', 'abort-spawn'],
    'a spawn under way is aborted',
  );
  const stopBackoff = transition(backoff, eventOf('stop', 0));
  t.same(
    stopBackoff.effects.map((e) => e.kind),
    ['cancel-timer', 'remove-shm'],
    'nothing runs: the timer is cancelled, the shared memory removed',
  );
  const stale = transition(backoff, eventOf('backoff-over', 1));
  t.equal(stale.outcome, 'ignored', 'a timer of an earlier backoff');
  const broken = drive(hotProbing, ['admin-probed', 1]);
  t.equal(broken.hotRestartBroken, true, 'a failed child breaks hot restart');
  t.equal(drive(cold, ['exited', 1]).hotRestartBroken, false, 'the cold restart (epoch 0) repairs it');
});
