/**
 * The capture lifecycle's decisions, as a pure table: from what the manager
 * knows (Envoy ready or not and since when, whether our rules are in, the
 * failure policy) to what it must do next. The shell (capture-manager.ts)
 * performs the action, then asks again.
 *
 * | Envoy          | rules in | policy | action                                |
 * |----------------|----------|--------|---------------------------------------|
 * | ready          | no       | any    | install                               |
 * | ready          | yes      | any    | none (checks repair drift)            |
 * | never ready    | no       | any    | none: 'pending'                       |
 * | not ready      | yes      | closed | none: capture kept, traffic fails     |
 * | not ready < 1s | yes      | open   | wait (a short blip lifts nothing)     |
 * | not ready ≥ 1s | yes      | open   | lift: remove the rules, loud warning  |
 * | not ready      | no       | open   | none: 'lifted' while it once was in   |
 *
 * Stale rules of a crashed run found at start are ours too: `closed` keeps
 * them until Envoy is ready (then install replaces them in one transaction),
 * `open` removes them at once (traffic flows directly until Envoy is ready).
 */

export type FailurePolicy = 'closed' | 'open';

export interface PlanInput {
  readonly envoyReady: boolean;
  /** When Envoy was last seen going not ready (clock ms); undefined while ready or before it ever was. */
  readonly notReadySince: number | undefined;
  /** Envoy was ready at least once since start (capture has been wanted). */
  readonly wasReady: boolean;
  /** Our rules are in the tables (installed by us, or stale from an earlier run). */
  readonly rulesIn: boolean;
  /** The rules in are the current rule set (false: stale, or built for other workloads). */
  readonly rulesCurrent: boolean;
  readonly policy: FailurePolicy;
  readonly now: number;
  /** How long Envoy must stay not ready before `open` lifts capture. */
  readonly liftAfterMs: number;
}

export type PlanAction =
  | { readonly kind: 'install'; readonly why: 'envoy-ready' | 'outdated' }
  | { readonly kind: 'lift' }
  | { readonly kind: 'remove-stale' }
  | { readonly kind: 'wait'; readonly untilMs: number }
  | { readonly kind: 'none' };

/** Default wait before `open` lifts: well inside the 2 s the failure policy promises. */
export const LIFT_AFTER_MS = 1_000;

export function planCapture(s: PlanInput): PlanAction {
  if (s.envoyReady) {
    if (!s.rulesIn) return { kind: 'install', why: 'envoy-ready' };
    if (!s.rulesCurrent) return { kind: 'install', why: 'outdated' };
    return { kind: 'none' };
  }
  if (!s.rulesIn) return { kind: 'none' };
  if (s.policy === 'closed') return { kind: 'none' };
  // open: stale rules of an earlier run go at once; ours after Envoy stayed down a moment.
  if (!s.wasReady) return { kind: 'remove-stale' };
  const since = s.notReadySince ?? s.now;
  if (s.now - since < s.liftAfterMs) return { kind: 'wait', untilMs: since + s.liftAfterMs };
  return { kind: 'lift' };
}
