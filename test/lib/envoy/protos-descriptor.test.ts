/**
 * The Envoy protos the agent loads come from envoyDescriptor() (written by the build
 * into dist/lib/envoy/envoy-protos.json): of the parsed .proto files, the types and
 * fields the agent's sources name, without the options protobufjs never reads.
 * Proof that it changes nothing on the wire: every resource of the golden fixture
 * snapshot encodes to the same bytes and decodes to the same object with both roots
 * (the golden tests also check every golden resource against it, through checkMessage).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import protobuf from 'protobufjs';
import t from 'tap';
import { RESOURCE_KINDS } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { ALSO_LOADED, agentSourceNames } from '../../../lib/envoy/proto-names.js';
import { checkMessage, DECODE_OPTIONS, ENVOY_DESCRIPTOR_FILE, envoyDescriptor, parseEnvoyProtos } from '../../../lib/envoy/protos.js';
import { TypeUrl, typeNameOf } from '../../../lib/envoy/type-urls.js';
import { repoRoot } from '../../../scripts/repo-root.js';
import { fixtureIdentities, fixtureModel } from '../../agent/xds/fixtures/model.js';

const parsed = parseEnvoyProtos();
const sourceNames = agentSourceNames(repoRoot());
const descriptor = envoyDescriptor(parsed, sourceNames);
const fromDescriptor = protobuf.Root.fromJSON(descriptor);
fromDescriptor.resolveAll();

const TYPE_OF = {
  listeners: TypeUrl.Listener,
  clusters: TypeUrl.Cluster,
  endpoints: TypeUrl.ClusterLoadAssignment,
  routes: TypeUrl.RouteConfiguration,
  secrets: TypeUrl.Secret,
} as const;

t.test('every resource of the fixture snapshot: the same bytes and the same decoded object with both roots', async (t) => {
  const snapshot = buildSnapshot(fixtureModel(), fixtureIdentities());
  let count = 0;
  for (const kind of RESOURCE_KINDS) {
    const name = typeNameOf(TYPE_OF[kind]);
    const a = parsed.lookupType(name);
    const b = fromDescriptor.lookupType(name);
    for (const [resourceName, resource] of snapshot.resources[kind]) {
      const bytesA = a.encode(a.fromObject(resource as Record<string, unknown>)).finish();
      const bytesB = b.encode(b.fromObject(resource as Record<string, unknown>)).finish();
      t.equal(Buffer.from(bytesB).toString('hex'), Buffer.from(bytesA).toString('hex'), `${kind} ${resourceName}: bytes`);
      t.strictSame(
        b.toObject(b.decode(bytesA), DECODE_OPTIONS),
        a.toObject(a.decode(bytesA), DECODE_OPTIONS),
        `${kind} ${resourceName}: decoded`,
      );
      count++;
    }
  }
  t.ok(count >= 15, `${count} resources compared`);
});

/** Every type and enum under a namespace. */
function typesOf(root: protobuf.NamespaceBase): (protobuf.Type | protobuf.Enum)[] {
  const out: (protobuf.Type | protobuf.Enum)[] = [];
  const walk = (ns: protobuf.ReflectionObject) => {
    if (ns instanceof protobuf.Type || ns instanceof protobuf.Enum) out.push(ns);
    if (ns instanceof protobuf.Namespace) for (const child of ns.nestedArray) walk(child);
  };
  walk(root);
  return out;
}

t.test('the descriptor: named fields only, each as the parsed root has it; of the options only those protobufjs reads', async (t) => {
  const all = typesOf(parsed);
  const loaded = typesOf(fromDescriptor);
  t.ok(all.length > 500, `${all.length} types and enums parsed`);
  t.ok(loaded.length > 100 && loaded.length < all.length / 2, `${loaded.length} of them loaded`);
  for (const url of Object.values(TYPE_OF)) t.ok(fromDescriptor.lookupType(typeNameOf(url)), `${typeNameOf(url)} is loaded`);
  for (const name of ALSO_LOADED) t.ok(fromDescriptor.lookupType(name), `${name} is loaded (ALSO_LOADED)`);
  let fields = 0;
  let dropped = 0;
  for (const type of loaded) {
    const original = parsed.lookup(type.fullName);
    if (type instanceof protobuf.Enum) {
      t.strictSame(type.values, (original as protobuf.Enum).values, `${type.fullName}: the same values`);
      continue;
    }
    const originalType = original as protobuf.Type;
    const wellKnown = type.fullName.startsWith('.google.protobuf.');
    for (const field of type.fieldsArray) {
      const from = originalType.fields[field.name];
      const same =
        from !== undefined &&
        from.id === field.id &&
        from.repeated === field.repeated &&
        (from.resolvedType?.fullName ?? from.type) === (field.resolvedType?.fullName ?? field.type) &&
        (wellKnown || sourceNames.has(field.name));
      if (!same) t.fail(`${type.fullName}.${field.name}: not as parsed, or not named by the agent`);
      fields++;
    }
    dropped += originalType.fieldsArray.filter((f) => type.fields[f.name] === undefined && f.declaringField === null).length;
  }
  t.ok(fields > 300, `${fields} fields loaded, each named by the agent's sources and as parsed`);
  t.ok(dropped > 500, `${dropped} fields of the loaded types left out`);
  const optionKeys = new Set<string>();
  const walk = (node: Record<string, unknown>) => {
    for (const key of Object.keys((node.options as object | undefined) ?? {})) optionKeys.add(key);
    for (const map of ['nested', 'fields', 'oneofs', 'methods']) {
      for (const child of Object.values((node[map] as Record<string, Record<string, unknown>> | undefined) ?? {})) walk(child);
    }
  };
  walk(descriptor as Record<string, unknown>);
  t.ok(
    [...optionKeys].every(
      (k) => ['packed', 'default', 'proto3_optional', 'allow_alias', 'map_entry'].includes(k) || k.startsWith('features'),
    ),
  );
});

t.test('a field the agent never names is rejected by name, not dropped', async (t) => {
  const cluster = 'envoy.config.cluster.v3.Cluster';
  const unnamed = parsed
    .lookupType(cluster)
    .fieldsArray.map((f) => f.name)
    .find((name) => !sourceNames.has(name));
  if (unnamed === undefined) {
    t.fail('every Cluster field is named by the agent: pick another type');
    return;
  }
  t.throws(() => checkMessage(cluster, { name: 'c', [unnamed]: {} }), {
    code: 'MESH_E_PROTO_UNKNOWN_FIELD',
    message: new RegExp(`^${unnamed}: envoy\\.config\\.cluster\\.v3\\.Cluster has no field "${unnamed}" among those the agent loads`),
  });
});

t.test('the build wrote the same descriptor into dist/lib/envoy', async (t) => {
  const built = await readFile(path.join(repoRoot(), 'dist', 'lib', 'envoy', ENVOY_DESCRIPTOR_FILE), 'utf8');
  t.equal(built, JSON.stringify(descriptor));
});
