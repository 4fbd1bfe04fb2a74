/**
 * Where the data plane gets mesh policy from: the control plane's Policy.Watch
 * stream, with the last set received kept on disk (0600) and served at start
 * when the control plane is unreachable. The data plane sees only this
 * interface; `staticPolicySource` serves a fixed set (tests, and nodes with no
 * policy yet).
 */
import type { PolicySet } from '../../lib/policy/schema.js';

export type PolicyOrigin = 'none' | 'disk' | 'controlplane';

/** What status shows of a policy source (agent/policy/cp-policy-source.ts fills every field). */
export interface PolicySourceStatus {
  readonly revision: number;
  readonly origin: PolicyOrigin;
  /** The control plane's watch is open. */
  readonly connected: boolean;
  readonly lastError?: string;
  /** When the set in force arrived from the control plane (ms). */
  readonly receivedAt?: number;
}

export interface PolicySource {
  /** The set in force: revision 0 and no resources before any arrived. */
  current(): PolicySet;
  origin(): PolicyOrigin;
  /** What the node's workloads serve and call: the control plane sends what concerns these. */
  setInterest(interest: { services: readonly string[]; spiffeIds: readonly string[] }): void;
  onChange(listener: () => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void> | void;
  /** Connection details for status; sources without a control plane leave it out. */
  status?(): PolicySourceStatus;
}

export const EMPTY_POLICY_SET: PolicySet = Object.freeze({ revision: 0, resources: Object.freeze([]) });

export function staticPolicySource(
  set: PolicySet = EMPTY_POLICY_SET,
  origin: PolicyOrigin = set.revision === 0 ? 'none' : 'disk',
): PolicySource {
  return {
    current: () => set,
    origin: () => origin,
    setInterest: () => undefined,
    onChange: () => () => undefined,
    start: async () => undefined,
    stop: () => undefined,
  };
}
