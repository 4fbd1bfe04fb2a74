/**
 * Model + identities -> Snapshot (snapshot.ts has the Snapshot itself).
 *
 * In full, every resource is made (or taken from the BuildMemo) and added in a
 * fixed order: the workloads' resources and the trust bundle (the head), each
 * upstream's group, then the tail (capture, tracing). With a memo, a rebuild
 * first tries the patch path: when the head and tail are the very same
 * resources as last time, the upstreams the same objects but for a few (the
 * model memo keeps unchanged ones), and each changed upstream makes resources
 * of the very names it made before, names no one else adds, then the previous
 * snapshot's maps are copied for the kinds that changed and only those
 * entries are replaced (a Map keeps a replaced entry's place, so the order is
 * the full build's). A one-endpoint change then costs that upstream, not a
 * walk over 200 groups and 800 resources. Anything else (an upstream added
 * or removed, a name that changes, capture on, problems last time) builds in
 * full. The result is the same either way: test/agent/model/model-memo.test.ts
 * compares both on random edits.
 */
import { contentHash, stableJson } from '../../lib/stable-json.js';
import type { Identities, ModelUpstream, ProxyModel } from '../model/proxy-model.js';
import { isHttpLike } from '../model/proxy-model.js';
import type { BuildMemo, GroupItem, LastBuild } from './build-memo.js';
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
import { emptyResources, makeSnapshot, RESOURCE_KINDS, type ResourceKind, resourceName, type Snapshot } from './snapshot.js';

type Add = (kind: ResourceKind, resource: XdsResource) => void;
type Caller = ProxyModel['workloads'][number];
type Item = readonly [ResourceKind, XdsResource];

/** The parts a snapshot is made of; each adds its resources through `add`, in the order a full build adds them. */
function snapshotParts(model: ProxyModel, identities: Identities, memo: BuildMemo | undefined) {
  const make = (kind: ResourceKind, input: unknown, build: () => XdsResource): XdsResource =>
    memo === undefined ? build() : memo.resource(kind, input, build);
  const telemetry: Telemetry = {
    ...(model.accessLogPath === undefined ? {} : { accessLogPath: model.accessLogPath }),
    ...(model.tracing === undefined ? {} : { tracing: model.tracing }),
  };
  const tracingKey = model.tracing ?? null;

  /** The workloads' listeners, local clusters and SVID secrets, and the trust bundle. */
  const head = (add: Add): void => {
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
  };

  /** One upstream's listener, route, clusters and endpoints. */
  const upstream = (upstream: ModelUpstream, caller: Caller, add: Add): void => {
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

  const contexts = new Map<string, string>();
  const contextOf = (caller: Caller): string => {
    let context = contexts.get(caller.name);
    if (context === undefined) {
      context = stableJson([caller.spiffeId, caller.accessLog === true, model.accessLogPath ?? '', tracingKey]);
      contexts.set(caller.name, context);
    }
    return context;
  };

  /** Capture's listeners and clusters (and their problems), and the tracing cluster. */
  const tail = (add: Add, problems: string[]): void => {
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
  };

  return { head, upstream, contextOf, tail };
}

export function buildSnapshot(model: ProxyModel, identities: Identities, memo?: BuildMemo): Snapshot {
  if (memo?.last !== undefined && memo.lastSnapshot !== undefined) {
    const patched = patchSnapshot(model, identities, memo, memo.last, memo.lastSnapshot);
    if (patched !== undefined) {
      memo.builds.patched++;
      return patched;
    }
  }
  if (memo !== undefined) memo.builds.full++;
  return fullSnapshot(model, identities, memo);
}

function fullSnapshot(model: ProxyModel, identities: Identities, memo: BuildMemo | undefined): Snapshot {
  const parts = snapshotParts(model, identities, memo);
  const resources = emptyResources();
  const problems: string[] = [];
  const hashOf = (r: XdsResource) => memo?.hashes.get(r) ?? contentHash(r);
  // For the next build's patch path: what is added outside the groups, and how often each name is added.
  let phase: 'head' | 'groups' | 'tail' = 'head';
  const head: Item[] = [];
  const tail: Item[] = [];
  const adds = new Map<string, number>();
  const add = (kind: ResourceKind, resource: XdsResource): void => {
    const name = resourceName(kind, resource);
    if (memo !== undefined) {
      const key = `${kind}\0${name}`;
      adds.set(key, (adds.get(key) ?? 0) + 1);
      if (phase === 'head') head.push([kind, resource]);
      else if (phase === 'tail') tail.push([kind, resource]);
    }
    const existing = resources[kind].get(name);
    if (existing !== undefined && hashOf(existing) !== hashOf(resource)) {
      problems.push(`${kind}: duplicate name ${JSON.stringify(name)} with different content`);
      return;
    }
    resources[kind].set(name, resource);
  };

  parts.head(add);
  phase = 'groups';
  const contexts: string[] = [];
  for (const upstream of model.upstreams) {
    const caller = model.workloads.find((w) => w.name === upstream.workload);
    if (caller === undefined) {
      problems.push(
        `upstream ${upstream.service} on port ${upstream.localPort}: caller workload ${JSON.stringify(upstream.workload)} is not in the model`,
      );
      continue;
    }
    if (memo === undefined) {
      parts.upstream(upstream, caller, add);
      continue;
    }
    const context = parts.contextOf(caller);
    contexts.push(context);
    memo.group(upstream, context, () => parts.upstream(upstream, caller, add), add);
  }
  phase = 'tail';
  parts.tail(add, problems);
  memo?.commit();
  const snapshot = makeSnapshot(resources, problems, memo?.hashes, memo?.lastSnapshot);
  if (memo !== undefined) {
    memo.lastSnapshot = snapshot;
    const shared = new Set([...adds].filter(([, n]) => n > 1).map(([key]) => key));
    memo.last = problems.length === 0 ? { upstreams: model.upstreams, contexts, head, tail, shared } : undefined;
  }
  return snapshot;
}

const sameItems = (a: readonly Item[], b: readonly Item[]): boolean =>
  a.length === b.length && a.every(([kind, resource], i) => kind === b[i]?.[0] && resource === b[i]?.[1]);

/** The patch path (see the top of this file); undefined when this rebuild must be a full one. */
function patchSnapshot(model: ProxyModel, identities: Identities, memo: BuildMemo, last: LastBuild, base: Snapshot): Snapshot | undefined {
  // Capture's listener depends on every upstream's shape; a new upstream list is a full build.
  if (model.capture !== undefined || model.upstreams.length !== last.upstreams.length) return undefined;
  const parts = snapshotParts(model, identities, memo);
  const head: Item[] = [];
  parts.head((kind, resource) => head.push([kind, resource]));
  if (!sameItems(head, last.head)) return undefined;
  const tail: Item[] = [];
  const tailProblems: string[] = [];
  parts.tail((kind, resource) => tail.push([kind, resource]), tailProblems);
  if (tailProblems.length > 0 || !sameItems(tail, last.tail)) return undefined;

  // The head holds every caller's inbound listener, made from the whole workload: the same objects mean the same
  // callers, so an upstream that is the same object makes the same group.
  const changed = new Map<ResourceKind, Map<string, XdsResource>>();
  const replaced: GroupItem[] = [];
  for (let i = 0; i < model.upstreams.length; i++) {
    const upstream = model.upstreams[i] as ModelUpstream;
    const before = last.upstreams[i];
    if (upstream === before) continue;
    if (before === undefined || upstream.workload !== before.workload) return undefined;
    const caller = model.workloads.find((w) => w.name === upstream.workload);
    if (caller === undefined) return undefined;
    const context = parts.contextOf(caller);
    const old = memo.itemsOf(before, context);
    if (context !== last.contexts[i] || old === undefined) return undefined;
    const made: Item[] = [];
    const collect: Add = (kind, resource) => made.push([kind, resource]);
    memo.group(upstream, context, () => parts.upstream(upstream, caller, collect), collect);
    if (made.length !== old.length) return undefined;
    for (let j = 0; j < made.length; j++) {
      const [kind, resource] = made[j] as Item;
      const was = old[j] as GroupItem;
      const name = resourceName(kind, resource);
      if (kind !== was.kind || name !== resourceName(was.kind, was.entry.resource) || last.shared.has(`${kind}\0${name}`)) return undefined;
      if (resource === was.entry.resource) continue;
      const byName = changed.get(kind) ?? new Map<string, XdsResource>();
      changed.set(kind, byName);
      byName.set(name, resource);
    }
    replaced.push(...old);
  }

  const resources = {} as { [K in ResourceKind]: Map<string, XdsResource> };
  for (const kind of RESOURCE_KINDS) {
    const byName = changed.get(kind);
    // Unchanged kinds are the base's maps themselves (never written to); changed ones a copy with their entries replaced.
    const map = byName === undefined ? (base.resources[kind] as Map<string, XdsResource>) : new Map(base.resources[kind]);
    for (const [name, resource] of byName ?? []) map.set(name, resource);
    resources[kind] = map;
  }
  memo.commitPatch(replaced);
  const names = new Map([...changed].map(([kind, byName]) => [kind, new Set(byName.keys())] as const));
  const snapshot = makeSnapshot(resources, [], memo.hashes, base, names);
  memo.lastSnapshot = snapshot;
  memo.last = { ...last, upstreams: model.upstreams, head, tail };
  return snapshot;
}
