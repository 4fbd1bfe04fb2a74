/** What the ADS server reports about its streams (mesh-agent status, logs, tests). */

export interface NackRecord {
  /** LDS, CDS, EDS, RDS or SDS. */
  readonly type: string;
  /** The version Envoy rejected (never sent again). */
  readonly version: string;
  readonly nonce: string;
  /** Envoy's error_detail message. */
  readonly detail: string;
  readonly at: number;
  readonly node: string;
  /** Delta only: the resources of the rejected response. */
  readonly resources?: readonly string[];
}

export interface StreamTypeStatus {
  readonly type: string;
  /** '*' for wildcard types, else the subscribed names. */
  readonly subscribed: '*' | readonly string[];
  readonly sentVersion?: string;
  readonly sentNonce?: string;
  readonly ackedVersion?: string;
  readonly lastNack?: NackRecord;
  /** Resources Envoy holds as far as the server knows. */
  readonly resources: number;
  /** SotW: a request is open (the next change is sent at once). Delta: responses not yet acknowledged. */
  readonly pending: number;
}

export interface StreamStatus {
  readonly id: number;
  readonly api: 'sotw' | 'delta';
  readonly node: string;
  readonly connectedAt: number;
  readonly types: readonly StreamTypeStatus[];
}

/** Callbacks a stream uses; the server provides them. */
export interface StreamHooks {
  send(bytes: Buffer, info: { type: string; version: string; resources: number; removed: number; nonce: string }): void;
  /** Called after the stream's acknowledged set changed, so the listener can read it. */
  onAck(type: string, version: string, node: string): void;
  onNack(nack: NackRecord): void;
  /** The stream learned (or changed) its node id: the server watches that node's snapshots. */
  onNode(node: string): void;
  now(): number;
}
