/**
 * What the agent's identities report (status, the data plane): the node SVID,
 * one entry per wanted workload SVID, the trust bundle and the control-plane
 * connection. Types and one pure helper only, so that readers (data plane,
 * status) depend on this file and not on the modules that keep identities.
 */

/**
 * Where the SVID held came from: the control plane, or the agent's state
 * folder at start (a restart, possibly while the control plane was down).
 * It stays 'disk' until the first renewal from the control plane.
 */
export type SvidSource = 'control-plane' | 'disk';

export interface IdentityState {
  spiffeId: string;
  serial?: string;
  notAfter?: number;
  /** Next renewal, or next retry of a first fetch that failed. */
  nextRenewalAt?: number;
  lastError?: string;
  failures: number;
  state: 'pending' | 'ready' | 'failing';
  /** Set while an SVID is held. */
  source?: SvidSource;
}

export interface ControlPlaneStatus {
  address: string;
  state: 'connected' | 'connecting' | 'failing';
  lastError?: string;
}

export interface BundleStatus {
  sequence: number;
  roots: number;
  updatedAt?: number;
}

export interface IdentitiesStatus {
  node: IdentityState;
  workloads: IdentityState[];
  bundle: BundleStatus;
  controlPlane: ControlPlaneStatus;
}

/** Failing while attempts fail (or a held-less ID has an error), ready while held, else pending. */
export function stateOf(held: boolean, failures: number, lastError?: string): IdentityState['state'] {
  return failures > 0 || (lastError !== undefined && !held) ? 'failing' : held ? 'ready' : 'pending';
}

/** The state of a credential the rotation manager keeps. */
export function heldState(
  spiffeId: string,
  managed: { serial: string; notAfter: number; nextRenewalAt: number; failures: number; lastError?: string },
  source: SvidSource,
): IdentityState {
  return {
    spiffeId,
    serial: managed.serial,
    notAfter: managed.notAfter,
    nextRenewalAt: managed.nextRenewalAt,
    failures: managed.failures,
    ...(managed.lastError === undefined ? {} : { lastError: managed.lastError }),
    state: stateOf(true, managed.failures),
    source,
  };
}
