/**
 * The Envoy supervisor's state, the events that move it and the effects it
 * asks for, as plain data. The state is one immutable value: its phase says
 * which fields exist, so no combination of flags decides behaviour. Every
 * process, spawn, validation and drain that exists is recorded in the state
 * before the effect that makes it is run, so stop() can undo exactly what
 * exists in any phase. Ids number every operation (spawn attempt, validation,
 * backoff timer); an event whose id is no longer current is stale.
 */
import type { RestartPolicy } from './restart-policy.js';

export interface Settings {
  readonly bootstrap: Readonly<Record<string, unknown>>;
  readonly binary: string;
  /** size, mtime and inode of the binary: a file replaced in place counts as a new binary. */
  readonly binaryId: string;
}

/** One Envoy process the supervisor launched (an epoch). */
export interface ProcRef {
  readonly id: number;
  readonly epoch: number;
  readonly pid?: number;
  readonly startedAt: number;
  /** From `envoy --version` of its binary. */
  readonly version?: string;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: string | null;
  readonly at: number;
}

export interface Common {
  readonly settings: Settings;
  readonly policy: RestartPolicy;
  /** The last id handed out. */
  readonly lastId: number;
  readonly epoch: number;
  /** Crashes since the last stable run. */
  readonly failures: number;
  /** Crash restarts done. */
  readonly restarts: number;
  /** A hot-restart child failed: Envoy refuses further hot restarts of this base id until an epoch 0. */
  readonly hotRestartBroken: boolean;
  /** Old epochs left to Envoy after a hot restart (it shuts them down after the parent shutdown time). */
  readonly retiring: readonly ProcRef[];
  readonly lastExit?: ExitInfo;
  /** The version of the last epoch that came up. */
  readonly version?: string;
}

/** A reload waiting in `starting`: `cold` when this start is the reload (answer when it runs), else deferred until running. */
export interface PendingReload {
  readonly next: Settings;
  readonly cold: boolean;
}

export type PhaseData =
  | { readonly phase: 'stopped' }
  /** Epoch 0: launching (`proc` unset) or waiting for its admin address. `initial`: start()'s own attempt. */
  | {
      readonly phase: 'starting';
      readonly id: number;
      readonly proc?: ProcRef;
      readonly initial: boolean;
      /** Why it is being killed (a start that timed out). */
      readonly failure?: string;
      readonly reload?: PendingReload;
    }
  | { readonly phase: 'running'; readonly proc: ProcRef; readonly adminAddress?: string }
  /** `envoy --mode validate` of a new bootstrap; the running epoch serves on. */
  | {
      readonly phase: 'validating';
      readonly id: number;
      readonly proc: ProcRef;
      readonly adminAddress?: string;
      readonly next: Settings;
      /** The running epoch exited meanwhile: a crash, handled once the validation is over. */
      readonly procExit?: ExitInfo;
    }
  /** A new epoch (`id`) next to its parent until its admin API answers. */
  | {
      readonly phase: 'hot-restarting';
      readonly id: number;
      readonly parent: ProcRef;
      readonly parentAdmin?: string;
      /** The parent left (normal once the child runs; a crash if the child fails). */
      readonly parentExit?: ExitInfo;
      readonly launching: boolean;
      readonly child?: ProcRef;
      readonly next: Settings;
      readonly failure?: string;
      /** The child is gone; asking whether the parent's admin API still answers. */
      readonly probing: boolean;
    }
  /** Hot restart is broken: the old epoch (and old retiring ones) are stopped, then epoch 0 with the new settings. */
  | { readonly phase: 'cold-restarting'; readonly old?: ProcRef; readonly next: Settings }
  | { readonly phase: 'backoff'; readonly timer: number; readonly nextRestartAt: number; readonly due: boolean }
  /** stop(): waits for every process, spawn, validation and drain recorded, then removes Envoy's shared memory. */
  | {
      readonly phase: 'draining';
      readonly current?: ProcRef;
      readonly adminAddress?: string;
      readonly procs: readonly ProcRef[];
      readonly launching?: number;
      readonly validating?: number;
      readonly draining?: number;
      readonly removing: boolean;
    };

export type SupervisorState = Common & PhaseData;
export type Phase = PhaseData['phase'];
export type StateIn<P extends Phase> = Common & Extract<PhaseData, { phase: P }>;

type EventBody =
  | { kind: 'start' }
  | { kind: 'stop' }
  | { kind: 'reload'; next: Settings }
  | { kind: 'spawned'; id: number; pid?: number; binaryId?: string; version?: string }
  | { kind: 'spawn-failed'; id: number; reason: string }
  /** The epoch wrote its admin address (and, for a hot-restart child, its admin API answers). */
  | { kind: 'admin-ready'; id: number; address: string }
  | { kind: 'admin-timeout'; id: number; reason: string }
  | { kind: 'exited'; id: number; code: number | null; signal: string | null }
  | { kind: 'validated'; id: number; ok: boolean; output: string }
  | { kind: 'drained'; id: number }
  | { kind: 'backoff-over'; timer: number }
  | { kind: 'admin-probed'; id: number; answers: boolean }
  | { kind: 'shm-removed' };

/** Every event carries the clock's time when it happened. */
export type SupervisorEvent = EventBody & { readonly at: number };
export type EventKind = SupervisorEvent['kind'];
export type EventOf<K extends EventKind> = Extract<SupervisorEvent, { kind: K }>;

export type EnvoyEventKind = 'started' | 'exited' | 'restarting' | 'hot-restarted' | 'stopped';

export interface Failure {
  code: 'MESH_E_PROCESS_START' | 'MESH_E_ENVOY_RELOAD';
  message: string;
  /** The process whose last output lines belong in the message. */
  outputOf?: number;
}

export type Effect =
  | { kind: 'spawn'; id: number; epoch: number; settings: Settings; prepare: boolean }
  | { kind: 'abort-spawn'; id: number }
  | { kind: 'await-admin'; id: number; epoch: number; confirm: boolean }
  | { kind: 'validate'; id: number; epoch: number; settings: Settings }
  | { kind: 'abort-validate'; id: number }
  /** SIGKILL now. */
  | { kind: 'kill'; id: number }
  /** SIGTERM, then SIGKILL after 5 s. */
  | { kind: 'terminate'; ids: number[] }
  /** Safety net: SIGTERM if the old epoch outlives its parent shutdown time. */
  | { kind: 'retire'; id: number }
  | { kind: 'drain'; id: number; address: string }
  | { kind: 'probe-admin'; id: number; address: string }
  | { kind: 'set-timer'; timer: number; ms: number }
  | { kind: 'cancel-timer'; timer: number }
  | { kind: 'remove-shm' }
  | { kind: 'notify'; event: EnvoyEventKind; detail?: string }
  | { kind: 'settle-start'; failure?: Failure }
  | { kind: 'settle-reload'; result?: 'hot-restarted' | 'unchanged'; failure?: Failure }
  | { kind: 'settle-stop' }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string; fields?: Record<string, unknown>; outputOf?: number };

export interface Step {
  readonly state: SupervisorState;
  readonly effects: readonly Effect[];
  /** `ignored`: stale or irrelevant here (no change); `rejected`: a call not allowed in this phase. */
  readonly outcome: 'applied' | 'ignored' | 'rejected';
  readonly reason?: string;
}

export function initialState(settings: Settings, policy: RestartPolicy): SupervisorState {
  return { phase: 'stopped', settings, policy, lastId: 0, epoch: 0, failures: 0, restarts: 0, hotRestartBroken: false, retiring: [] };
}

export function applied(state: SupervisorState, effects: readonly Effect[] = []): Step {
  return { state, effects, outcome: 'applied' };
}

/** The fields every phase has. */
export function commonOf(state: SupervisorState): Common {
  const { settings, policy, lastId, epoch, failures, restarts, hotRestartBroken, retiring, lastExit, version } = state;
  const optional = { ...(lastExit ? { lastExit } : {}), ...(version ? { version } : {}) };
  return { settings, policy, lastId, epoch, failures, restarts, hotRestartBroken, retiring, ...optional };
}

/** Moves to another phase: the common fields (with `changes`) and the new phase's own fields, nothing of the old phase. */
export function enter(state: SupervisorState, data: PhaseData, changes: Partial<Common> = {}): SupervisorState {
  return { ...commonOf(state), ...changes, ...data };
}

/** The next id, and the state that handed it out. */
export function withId<S extends SupervisorState>(state: S): [number, S] {
  const id = state.lastId + 1;
  return [id, { ...state, lastId: id }];
}

export function describeExit(exit: { code: number | null; signal: string | null }): string {
  return exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
}
