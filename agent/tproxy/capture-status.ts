/** What `mesh-agent status` and `mesh-agent tproxy status` say about traffic capture. */
import type { IptablesBackend } from './rules.js';

export type CaptureState =
  /** transparentProxy.enabled is false. */
  | 'disabled'
  /** Enabled, waiting for Envoy to be ready before installing. */
  | 'pending'
  /** Rules installed and matching the expected ones. */
  | 'installed'
  /** failurePolicy open and Envoy not ready: capture lifted, traffic flows directly (loud warning). */
  | 'lifted'
  /** Installed rules differ from the expected ones (being repaired). */
  | 'drift'
  /** Installing, checking or removing failed; `error` says why. */
  | 'failed'
  /** Removed on stop. */
  | 'removed';

export interface CaptureStatus {
  readonly state: CaptureState;
  readonly backend?: IptablesBackend;
  readonly ipv6: boolean;
  readonly failurePolicy: 'closed' | 'open';
  /** Rules expected (per family) vs found installed. */
  readonly rules: { readonly expected: number; readonly installed: number };
  /** Expected rules not installed, and installed rules of ours not expected (rendered lines). */
  readonly drift: { readonly missing: readonly string[]; readonly unexpected: readonly string[] };
  readonly inboundPorts: readonly number[];
  readonly lastCheckAt?: number;
  readonly repairs: number;
  readonly warning?: string;
  readonly error?: { readonly code: string; readonly message: string };
}
