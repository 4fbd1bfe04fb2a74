/**
 * Policy.Watch fan-out: every open stream gets the policy set that concerns
 * it (policy-filter.ts), state of the world, whenever that set changes.
 *
 * - Subscribers with the same interest share a group; a group's set is
 *   filtered and encoded once per store revision, and the same bytes are
 *   written to each of its streams.
 * - On subscribe: a request at the current revision gets nothing until the
 *   next change; any other revision gets the set at once, at the current
 *   revision (the agent sends revision 0 when its interest changed).
 * - On a store change: each group is filtered again; streams whose group set
 *   changed get it. Writes go out in batches, yielding to the event loop
 *   between them; a stream whose buffer is full (write() returned false) gets
 *   nothing more until it drains, then only the newest set (older ones are
 *   skipped: each update is the whole set).
 * - endNode() ends a revoked node's streams with MESH_E_NODE_REVOKED.
 */

import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { StoredPolicy } from '../../lib/policy/schema.js';
import type { PolicyResourceWire } from '../../lib/policy/wire.js';
import { interestKey, normalizeInterest, PolicyIndex, type PolicyInterest, setFingerprint } from './policy-filter.js';
import type { PolicyRecord, PolicyStore } from './policy-store.js';

/** What the fan-out reads: the store's current state and its changes. */
export type PolicyFeed = Pick<PolicyStore, 'revision' | 'list' | 'onChange'>;

/** The wire message (mesh.controlplane.v1.PolicyUpdate) before encoding. */
export interface PolicyUpdateMessage {
  revision: number;
  resources: PolicyResourceWire[];
}

/** One Watch stream as the fan-out drives it. */
export interface PolicySink {
  readonly node: string;
  /** Writes one encoded PolicyUpdate; false when the stream's buffer is full (then drained() is called later). */
  write(bytes: Buffer): boolean;
  /** Ends the stream with this error. */
  end(error: MeshError): void;
}

export interface PolicySubscription {
  /** The stream's buffer drained: it gets the newest set if it is behind. */
  drained(): void;
  /** The stream is gone. */
  close(): void;
}

export interface PolicyFanoutOptions {
  store: PolicyFeed;
  encode: (update: PolicyUpdateMessage) => Buffer;
  logger: Logger;
  /** Writes per event-loop turn; default 256. */
  batchSize?: number;
}

interface Entry {
  readonly revision: number;
  readonly fingerprint: string;
  readonly bytes: Buffer;
  readonly size: number;
}

interface Group {
  readonly interest: PolicyInterest;
  readonly subs: Set<Sub>;
  entry?: Entry;
}

interface Sub {
  readonly sink: PolicySink;
  readonly group: Group;
  /** Fingerprint of the last set written to it. */
  sent?: string;
  /** The revision of the last set written to it (or that it held when it subscribed). */
  sentRevision?: number;
  blocked: boolean;
  closed: boolean;
}

export function toUpdateMessage(revision: number, resources: readonly (StoredPolicy & Partial<PolicyRecord>)[]): PolicyUpdateMessage {
  return {
    revision,
    resources: resources.map((r) => ({
      kind: r.kind,
      name: r.name,
      version: r.version,
      revision: r.revision,
      json: JSON.stringify(r.source),
      updated_at_ms: r.updatedAtMs ?? 0,
      updated_by: r.updatedBy ?? '',
    })),
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class PolicyFanout {
  private readonly groups = new Map<string, Group>();
  /** Open streams by node (revisionFor, endNode). */
  private readonly byNode = new Map<string, Set<Sub>>();
  private index: { revision: number; index: PolicyIndex<PolicyRecord> } | undefined;
  private dirty = false;
  private flushing: Promise<void> | undefined;
  private readonly unsubscribe: () => void;
  private readonly batchSize: number;
  private stopped = false;

  constructor(private readonly o: PolicyFanoutOptions) {
    this.batchSize = o.batchSize ?? 256;
    this.unsubscribe = o.store.onChange(() => this.changed());
  }

  /** Opens a subscription; sends the current set at once unless the subscriber already holds this revision. */
  subscribe(sink: PolicySink, request: { revision: number; interest: PolicyInterest }): PolicySubscription {
    const interest = normalizeInterest(request.interest);
    const key = interestKey(interest);
    let group = this.groups.get(key);
    if (group === undefined) {
      group = { interest, subs: new Set() };
      this.groups.set(key, group);
    }
    const sub: Sub = { sink, group, blocked: false, closed: false };
    group.subs.add(sub);
    const own = this.byNode.get(sink.node) ?? new Set<Sub>();
    own.add(sub);
    this.byNode.set(sink.node, own);
    const entry = this.entryFor(group);
    if (request.revision === entry.revision) {
      sub.sent = entry.fingerprint;
      sub.sentRevision = entry.revision;
    } else this.send(sub, entry);
    return {
      drained: () => {
        sub.blocked = false;
        if (!sub.closed && sub.group.entry !== undefined && sub.sent !== sub.group.entry.fingerprint) this.send(sub, sub.group.entry);
      },
      close: () => this.remove(sub),
    };
  }

  /** Ends every stream of a node (revoked while streaming). */
  endNode(node: string, error: MeshError): number {
    let ended = 0;
    for (const group of [...this.groups.values()])
      for (const sub of [...group.subs])
        if (sub.sink.node === node) {
          this.remove(sub);
          sub.sink.end(error);
          ended += 1;
        }
    return ended;
  }

  /**
   * The policy revision the node should hold: the revision of the last set
   * written to its streams (the highest), or the group's current one when a newer set
   * is still to be written. Undefined when the node has no open watch.
   */
  revisionFor(node: string): number | undefined {
    let found: number | undefined;
    for (const sub of this.byNode.get(node) ?? []) {
      const entry = sub.group.entry;
      const revision = entry !== undefined && sub.sent !== entry.fingerprint ? entry.revision : sub.sentRevision;
      if (revision !== undefined) found = Math.max(found ?? 0, revision);
    }
    return found;
  }

  stats(): { streams: number; groups: number; revision: number } {
    let streams = 0;
    for (const g of this.groups.values()) streams += g.subs.size;
    return { streams, groups: this.groups.size, revision: this.o.store.revision() };
  }

  /** Resolves once the changes seen so far reached every stream that could take them. */
  async settled(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
  }

  private remove(sub: Sub): void {
    if (sub.closed) return;
    sub.closed = true;
    sub.group.subs.delete(sub);
    const own = this.byNode.get(sub.sink.node);
    own?.delete(sub);
    if (own?.size === 0) this.byNode.delete(sub.sink.node);
    if (sub.group.subs.size === 0) this.groups.delete(interestKey(sub.group.interest));
  }

  private currentIndex(): { revision: number; index: PolicyIndex<PolicyRecord> } {
    const revision = this.o.store.revision();
    if (this.index?.revision !== revision) this.index = { revision, index: new PolicyIndex(this.o.store.list()) };
    return this.index;
  }

  /** The group's set at the current revision, filtered and encoded once. */
  private entryFor(group: Group): Entry {
    const { revision, index } = this.currentIndex();
    if (group.entry?.revision === revision) return group.entry;
    const resources = index.filter(group.interest);
    const fingerprint = setFingerprint(resources);
    const bytes = this.o.encode(toUpdateMessage(revision, resources));
    group.entry = { revision, fingerprint, bytes, size: resources.length };
    return group.entry;
  }

  private send(sub: Sub, entry: Entry): void {
    if (sub.closed || sub.blocked) return;
    sub.sent = entry.fingerprint;
    sub.sentRevision = entry.revision;
    try {
      if (!sub.sink.write(entry.bytes)) sub.blocked = true;
    } catch (err) {
      this.o.logger.debug('a policy stream could not be written; dropped', { node: sub.sink.node, error: err });
      this.remove(sub);
    }
  }

  private changed(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.flushing !== undefined) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      // A change that came after the last pass ended but before this callback ran.
      if (this.dirty) this.changed();
    });
  }

  private async flush(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      const started = performance.now();
      const due: Array<[Sub, Entry]> = [];
      for (const group of this.groups.values()) {
        const entry = this.entryFor(group);
        for (const sub of group.subs) if (sub.sent !== entry.fingerprint) due.push([sub, entry]);
      }
      for (let i = 0; i < due.length; i += this.batchSize) {
        if (i > 0) await nextTurn();
        for (const [sub, entry] of due.slice(i, i + this.batchSize)) {
          // A newer change may have replaced the group's set meanwhile; its own pass sends that one.
          if (sub.group.entry === entry) this.send(sub, entry);
        }
      }
      this.o.logger.info('policy revision sent', {
        revision: this.o.store.revision(),
        streams: due.length,
        groups: this.groups.size,
        ms: Math.round(performance.now() - started),
      });
    }
  }
}

export function nodeRevokedError(node: string): MeshError {
  return new MeshError('MESH_E_NODE_REVOKED', `node ${node} was revoked; its policy stream is closed`, { details: { node } });
}
