/**
 * The TrafficPolicy part of an outbound cluster: connect timeout, circuit
 * breakers (thresholds at DEFAULT priority), outlier detection and the load
 * balancer. The hash of a ring-hash balancer is a route's hash_policy
 * (http-routes.ts); the cluster only says RING_HASH.
 */
import type { TrafficPolicySpec } from '../../../lib/policy/schema.js';
import { CONNECT_TIMEOUT, durationOf, type XdsResource } from './common.js';

const LB_POLICY = {
  roundRobin: 'ROUND_ROBIN',
  leastRequest: 'LEAST_REQUEST',
  random: 'RANDOM',
  ringHash: 'RING_HASH',
} as const;

const u32 = (value: number) => ({ value });

export function connectTimeout(policy: TrafficPolicySpec | undefined): XdsResource {
  return policy?.connectTimeout === undefined ? CONNECT_TIMEOUT : durationOf(policy.connectTimeout);
}

export function lbPolicy(policy: TrafficPolicySpec | undefined): string {
  return LB_POLICY[policy?.loadBalancer?.type ?? 'roundRobin'];
}

export function circuitBreakers(policy: TrafficPolicySpec | undefined): XdsResource | undefined {
  const cb = policy?.circuitBreaker;
  if (cb === undefined) return undefined;
  const threshold: XdsResource = { priority: 'DEFAULT' };
  if (cb.maxConnections !== undefined) threshold.max_connections = u32(cb.maxConnections);
  if (cb.maxPendingRequests !== undefined) threshold.max_pending_requests = u32(cb.maxPendingRequests);
  if (cb.maxRequests !== undefined) threshold.max_requests = u32(cb.maxRequests);
  if (cb.maxRetries !== undefined) threshold.max_retries = u32(cb.maxRetries);
  return { thresholds: [threshold] };
}

export function outlierDetection(policy: TrafficPolicySpec | undefined): XdsResource | undefined {
  const od = policy?.outlierDetection;
  if (od === undefined) return undefined;
  return {
    consecutive_5xx: u32(od.consecutive5xx),
    interval: durationOf(od.interval),
    base_ejection_time: durationOf(od.baseEjectionTime),
    max_ejection_percent: u32(Math.round(od.maxEjectionPercent)),
  };
}
