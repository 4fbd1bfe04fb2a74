/**
 * A snapshot: every resource one Envoy gets, built purely from the ProxyModel
 * and the identities, immutable, versioned by content hash (per resource and
 * as a whole), and checked for consistency before it is served.
 */
import { deepFreeze } from '../../lib/deep-freeze.js';
import { contentHash, entriesHash, stableJson, versionsHash } from '../../lib/stable-json.js';
import type { ModelUpstream, ProxyModel } from '../model/proxy-model.js';
import { isHttpLike } from '../model/proxy-model.js';
import { buildBlackholeCluster, buildPassthroughCluster } from './resources/capture-clusters.js';
import { buildCaptureInboundListener } from './resources/capture-inbound-listener.js';
import { buildCaptureOutboundListener } from './resources/capture-outbound-listener.js';
import type { XdsResource } from './resources/common.js';
import { buildEndpoints } from './resources/endpoints.js';
import { buildInboundListener } from './resources/inbound-listener.js';
import { buildLocalAppCluster } from './resources/local-app-cluster.js';
import { buildOutboundCluster } from './resources/outbound-cluster.js';
import { buildOutboundListener } from './resources/outbound-listener.js';
import { buildOutboundRouteConfig } from './resources/route-config.js';
import { buildBundleSecret, buildIdentitySecret } from './resources/secrets.js';
import { buildTracingCluster, type Telemetry } from './resources/tracing.js';

export const RESOURCE_KINDS = ['listeners', 'clusters', 'endpoints', 'routes', 'secrets'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

import type { Identities } from '../model/proxy-model.js';

export type { Identities, IdentityMaterial } from '../model/proxy-model.js';

export type ResourceMaps = { readonly [K in ResourceKind]: ReadonlyMap<string, XdsResource> };
export type VersionMaps = { readonly [K in ResourceKind]: ReadonlyMap<string, string> };

export interface Snapshot {
  /** Content hash of every (kind, name, version): equal models give equal versions. */
  readonly version: string;
  readonly resources: ResourceMaps;
  /** Content hash of each resource, by kind and name. */
  readonly versions: VersionMaps;
  /** Problems found while building (name collisions, unknown callers); checkSnapshot reports them. */
  readonly buildProblems: readonly string[];
}

/** The name a resource is served under (ClusterLoadAssignment uses cluster_name). */
export function resourceName(kind: ResourceKind, resource: XdsResource): string {
  const name = kind === 'endpoints' ? resource.cluster_name : resource.name;
  return typeof name === 'string' ? name : '';
}

/** Per versions map of a snapshot: the hash of its (name, version) entries, so a kind reused from the previous snapshot is not hashed again. */
const kindHashes = new WeakMap<ReadonlyMap<string, string>, string>();

/** True when both maps hold the very same resource objects under the same keys, in the same order. */
function sameEntries(a: ReadonlyMap<string, XdsResource>, b: ReadonlyMap<string, XdsResource>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  const other = b.entries();
  for (const [key, resource] of a) {
    const next = other.next().value as [string, XdsResource];
    if (next[0] !== key || next[1] !== resource) return false;
  }
  return true;
}

/**
 * Makes an immutable snapshot of the given resources (keyed by the map key)
 * and computes its versions. Exported so tests and later stages can assemble
 * snapshots directly.
 *
 * With `previous` (the last snapshot the same builder made), a kind whose map
 * holds the very same resource objects under the same keys (in the same order) is taken over
 * whole: the previous map, versions and hash, nothing sorted, frozen or hashed
 * again. A one-endpoint change then costs the endpoints, not all 800
 * resources, and later stages (check, encode, streams) see by identity which
 * kinds did not change. The version is the same either way: the hash of the
 * kinds' hashes, each the hash of its sorted (name, version) entries.
 */
export function makeSnapshot(
  resources: { [K in ResourceKind]: Map<string, XdsResource> },
  buildProblems: string[] = [],
  /** Content hashes already known (BuildMemo), by resource object. */
  knownHashes?: WeakMap<object, string>,
  previous?: Snapshot,
): Snapshot {
  const kept = {} as { [K in ResourceKind]: ReadonlyMap<string, XdsResource> };
  const versions = {} as { [K in ResourceKind]: ReadonlyMap<string, string> };
  const summary: Array<[ResourceKind, string, string]> = [];
  for (const kind of RESOURCE_KINDS) {
    const before = previous?.resources[kind];
    const reused = before !== undefined && previous !== undefined && sameEntries(resources[kind], before);
    let byName: ReadonlyMap<string, string>;
    if (reused) {
      kept[kind] = before;
      byName = previous.versions[kind];
    } else {
      const fresh = new Map<string, string>();
      for (const name of [...resources[kind].keys()].sort()) {
        const resource = deepFreeze(resources[kind].get(name) as XdsResource);
        fresh.set(name, knownHashes?.get(resource) ?? contentHash(resource));
      }
      kept[kind] = resources[kind];
      byName = fresh;
    }
    versions[kind] = byName;
    let hash = kindHashes.get(byName);
    if (hash === undefined) {
      hash = versionsHash(byName);
      kindHashes.set(byName, hash);
    }
    summary.push([kind, '', hash]);
  }
  return Object.freeze({
    version: entriesHash(summary),
    resources: Object.freeze(kept),
    versions: Object.freeze(versions),
    buildProblems: Object.freeze([...buildProblems]),
  });
}

export function emptyResources(): { [K in ResourceKind]: Map<string, XdsResource> } {
  return { listeners: new Map(), clusters: new Map(), endpoints: new Map(), routes: new Map(), secrets: new Map() };
}

interface MemoEntry {
  readonly resource: XdsResource;
  readonly hash: string;
}

/** What one group (an upstream) made: its resources in the order they were added, with their memo keys. */
interface GroupItem {
  readonly kind: ResourceKind;
  readonly key: string;
  readonly entry: MemoEntry;
}

/**
 * Remembers built resources between rebuilds, keyed by their inputs: a
 * rebuild after one endpoint changed builds and hashes only that upstream's
 * resources and reuses the (frozen) objects of the rest, which keeps rebuilds
 * fast and the agent's garbage low. Entries not used by a build are dropped.
 *
 * Groups: the resources of one upstream are also remembered by the upstream
 * object and a context string (what else they depend on). An upstream that
 * is the very same object as in the previous build (agent/model/model-memo.ts
 * keeps unchanged upstreams) gets its resources back without computing any
 * key: a one-endpoint change costs one upstream, not 200 keys.
 */
export class BuildMemo {
  private previous = new Map<string, MemoEntry>();
  private current = new Map<string, MemoEntry>();
  private groups = new WeakMap<object, { readonly context: string; readonly items: readonly GroupItem[] }>();
  private recording: GroupItem[] | undefined;
  readonly hashes = new WeakMap<object, string>();
  /** The snapshot the last build made: makeSnapshot takes its unchanged kinds over whole. */
  lastSnapshot: Snapshot | undefined;

  resource(kind: ResourceKind, input: unknown, build: () => XdsResource): XdsResource {
    const key = `${kind}\0${typeof input === 'string' ? input : stableJson(input)}`;
    let entry = this.current.get(key) ?? this.previous.get(key);
    if (entry === undefined) {
      const resource = deepFreeze(build());
      entry = { resource, hash: contentHash(resource) };
      this.hashes.set(resource, entry.hash);
    }
    this.current.set(key, entry);
    this.recording?.push({ kind, key, entry });
    return entry.resource;
  }

  /**
   * Runs `body` (which makes its resources with resource() and adds them),
   * or, when `owner` made its resources in the same context before, adds
   * those again in the same order and keeps their entries.
   */
  group(owner: object, context: string, body: () => void, add: (kind: ResourceKind, resource: XdsResource) => void): void {
    const known = this.groups.get(owner);
    if (known !== undefined && known.context === context) {
      for (const item of known.items) {
        this.current.set(item.key, item.entry);
        this.recording?.push(item);
        add(item.kind, item.entry.resource);
      }
      return;
    }
    const outer = this.recording;
    const items: GroupItem[] = [];
    this.recording = items;
    try {
      body();
    } finally {
      this.recording = outer;
    }
    outer?.push(...items);
    this.groups.set(owner, { context, items });
  }

  /** Ends a build: what it did not use is forgotten. */
  commit(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

export function buildSnapshot(model: ProxyModel, identities: Identities, memo?: BuildMemo): Snapshot {
  const resources = emptyResources();
  const problems: string[] = [];
  const hashOf = (r: XdsResource) => memo?.hashes.get(r) ?? contentHash(r);
  const make = (kind: ResourceKind, input: unknown, build: () => XdsResource): XdsResource =>
    memo === undefined ? build() : memo.resource(kind, input, build);
  const add = (kind: ResourceKind, resource: XdsResource): void => {
    const name = resourceName(kind, resource);
    const existing = resources[kind].get(name);
    if (existing !== undefined && hashOf(existing) !== hashOf(resource)) {
      problems.push(`${kind}: duplicate name ${JSON.stringify(name)} with different content`);
      return;
    }
    resources[kind].set(name, resource);
  };

  const telemetry: Telemetry = {
    ...(model.accessLogPath === undefined ? {} : { accessLogPath: model.accessLogPath }),
    ...(model.tracing === undefined ? {} : { tracing: model.tracing }),
  };
  const tracingKey = model.tracing ?? null;
  for (const workload of model.workloads) {
    add(
      'listeners',
      make('listeners', [workload, model.trustDomain, model.accessLogPath ?? '', tracingKey], () =>
        buildInboundListener(workload, model.trustDomain, telemetry),
      ),
    );
    add(
      'clusters',
      make('clusters', workload, () => buildLocalAppCluster(workload)),
    );
    const cert = identities.certs.get(workload.spiffeId);
    if (cert !== undefined)
      add(
        'secrets',
        make('secrets', `${workload.spiffeId}\0${cert.chainPem}\0${cert.keyPem}`, () =>
          buildIdentitySecret(workload.spiffeId, cert.chainPem, cert.keyPem),
        ),
      );
  }
  add(
    'secrets',
    make('secrets', `\0bundle\0${identities.bundlePem}`, () => buildBundleSecret(identities.bundlePem)),
  );

  const upstreamResources = (upstream: ModelUpstream, caller: ProxyModel['workloads'][number]): void => {
    const shape = {
      service: upstream.service,
      caller: upstream.workload,
      localPort: upstream.localPort,
      protocol: upstream.protocol,
      traffic: upstream.traffic === undefined ? undefined : { route: upstream.traffic.route, policy: upstream.traffic.policy },
    };
    const outbound = { ...telemetry, logged: caller.accessLog === true };
    if (upstream.mirrorOnly !== true) {
      // Capture-only upstreams are reached through the capture listener's chains (their route config), never a port of their own.
      if (upstream.captureOnly !== true)
        add(
          'listeners',
          make('listeners', [shape, model.accessLogPath ?? '', tracingKey, outbound.logged], () =>
            buildOutboundListener(upstream, outbound),
          ),
        );
      if (isHttpLike(upstream.protocol))
        add(
          'routes',
          make('routes', [shape, tracingKey], () => buildOutboundRouteConfig(upstream, model.tracing)),
        );
    }
    // The clusters' SAN list comes from the accepted identities (secure naming), not from the instances.
    const subsets = [undefined, ...(upstream.traffic?.subsets ?? []).map((s) => s.name)];
    for (const subset of subsets) {
      add(
        'clusters',
        make('clusters', [shape, subset ?? null, caller.spiffeId, upstream.acceptedIdentities], () =>
          buildOutboundCluster(upstream, caller.spiffeId, subset),
        ),
      );
      const instances = subset === undefined ? upstream.instances : upstream.traffic?.subsets.find((s) => s.name === subset)?.instances;
      add(
        'endpoints',
        make('endpoints', [upstream.service, subset ?? null, upstream.traffic?.localZone ?? null, instances], () =>
          buildEndpoints(upstream, subset),
        ),
      );
    }
  };
  // What an upstream's resources depend on besides the upstream: its caller's SVID and access log, the telemetry.
  const contexts = new Map<string, string>();
  const contextOf = (caller: ProxyModel['workloads'][number]): string => {
    let context = contexts.get(caller.name);
    if (context === undefined) {
      context = stableJson([caller.spiffeId, caller.accessLog === true, model.accessLogPath ?? '', tracingKey]);
      contexts.set(caller.name, context);
    }
    return context;
  };
  for (const upstream of model.upstreams) {
    const caller = model.workloads.find((w) => w.name === upstream.workload);
    if (caller === undefined) {
      problems.push(
        `upstream ${upstream.service} on port ${upstream.localPort}: caller workload ${JSON.stringify(upstream.workload)} is not in the model`,
      );
      continue;
    }
    const body = () => upstreamResources(upstream, caller);
    if (memo === undefined) body();
    else memo.group(upstream, contextOf(caller), body, add);
  }
  const capture = model.capture;
  if (capture !== undefined) {
    for (const chain of capture.chains) {
      if (!model.upstreams.some((u) => u.workload === capture.caller && u.service === chain.service && u.mirrorOnly !== true))
        problems.push(`capture chain ${chain.service}:${chain.port}: caller ${JSON.stringify(capture.caller)} has no upstream of it`);
    }
    const callerUpstreams = model.upstreams.filter((u) => u.workload === capture.caller);
    // The listener depends on each upstream's shape (protocol, TCP route), never on its instances.
    const shapes = callerUpstreams.map((u) => [u.service, u.protocol, u.mirrorOnly === true, u.traffic?.route?.tcp ?? null]);
    const callerLogged = model.workloads.find((w) => w.name === capture.caller)?.accessLog === true;
    const captureOutbound = { ...telemetry, logged: callerLogged };
    add(
      'listeners',
      make('listeners', ['capture:outbound', capture, shapes, model.accessLogPath ?? '', tracingKey, callerLogged], () =>
        buildCaptureOutboundListener(capture, callerUpstreams, captureOutbound),
      ),
    );
    add(
      'listeners',
      make('listeners', ['capture:inbound', capture, model.workloads, model.trustDomain, model.accessLogPath ?? '', tracingKey], () =>
        buildCaptureInboundListener(capture, model.workloads, model.trustDomain, telemetry),
      ),
    );
    // The blackhole serves the loop guards whatever the policy; the passthrough only policy allow.
    add('clusters', make('clusters', 'capture:blackhole', buildBlackholeCluster));
    if (capture.policy === 'allow') add('clusters', make('clusters', 'capture:passthrough', buildPassthroughCluster));
  }
  if (model.tracing !== undefined) {
    const tracing = model.tracing;
    add(
      'clusters',
      make('clusters', ['tracing', tracing], () => buildTracingCluster(tracing)),
    );
  }
  memo?.commit();
  const snapshot = makeSnapshot(resources, problems, memo?.hashes, memo?.lastSnapshot);
  if (memo !== undefined) memo.lastSnapshot = snapshot;
  return snapshot;
}
