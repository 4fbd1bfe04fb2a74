/**
 * The Envoy protos the agent loads come from envoyDescriptor() (written by the build
 * into dist/lib/envoy/envoy-protos.json): the parsed .proto files without the options
 * protobufjs never reads. Proof that it changes nothing on the wire: every resource
 * of the golden fixture snapshot encodes to the same bytes and decodes to the same
 * object with both roots.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import protobuf from 'protobufjs';
import t from 'tap';
import { RESOURCE_KINDS } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { DECODE_OPTIONS, ENVOY_DESCRIPTOR_FILE, envoyDescriptor, parseEnvoyProtos } from '../../../lib/envoy/protos.js';
import { TypeUrl, typeNameOf } from '../../../lib/envoy/type-urls.js';
import { repoRoot } from '../../../scripts/repo-root.js';
import { fixtureIdentities, fixtureModel } from '../../agent/xds/fixtures/model.js';

const parsed = parseEnvoyProtos();
const descriptor = envoyDescriptor(parsed);
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

t.test('the descriptor has the same types and fields; of the options only those protobufjs reads', async (t) => {
  // Fields sorted: extension fields of the *Options types are added in another order.
  const names = (root: protobuf.NamespaceBase): string[] => {
    const out: string[] = [];
    const walk = (ns: protobuf.ReflectionObject) => {
      if (ns instanceof protobuf.Type)
        out.push(
          `${ns.fullName}(${ns.fieldsArray
            .map((f) => `${f.name}=${f.id}:${f.type}`)
            .sort()
            .join(',')})`,
        );
      else if (ns instanceof protobuf.Enum) out.push(`${ns.fullName}{${Object.entries(ns.values).join(',')}}`);
      if (ns instanceof protobuf.Namespace) for (const child of ns.nestedArray) walk(child);
    };
    walk(root);
    return out.sort();
  };
  const all = names(parsed);
  t.ok(all.length > 500, `${all.length} types and enums`);
  t.strictSame(names(fromDescriptor), all);
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

t.test('the build wrote the same descriptor into dist/lib/envoy', async (t) => {
  const built = await readFile(path.join(repoRoot(), 'dist', 'lib', 'envoy', ENVOY_DESCRIPTOR_FILE), 'utf8');
  t.equal(built, JSON.stringify(descriptor));
});
