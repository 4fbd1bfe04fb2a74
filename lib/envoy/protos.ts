/**
 * The Envoy v3 API, loaded from the .proto files that ship in
 * @grpc/grpc-js-xds (deps/), so the agent speaks exactly the wire format Envoy
 * does. Objects use the proto field names (snake_case), as Envoy's JSON does.
 *
 * `toAny`/`fromAny` are the only place protobuf Any values are built or read.
 * `checkMessage` rejects fields a type does not have (protobufjs drops them
 * silently), naming the field path, so a typo in a builder fails loudly.
 */

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { MeshError } from '../errors.js';
import './protobuf-lazy.js';
import { agentSourceNames, selectedJson, selectProtos } from './proto-names.js';
import { typeNameOf, typeUrlOf } from './type-urls.js';

/** The entry-point protos; their imports are loaded with them. */
export const ENVOY_PROTO_FILES: readonly string[] = Object.freeze([
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  // Only tests use it: the PROXY header stands in for the iptables REDIRECT in capture tests without root.
  'envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/config/trace/v3/zipkin.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
]);

/** Include directories for the Envoy protos and their imports. */
export function envoyProtoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const xdsRoot = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const protobufRoot = path.dirname(require.resolve('protobufjs/package.json'));
  return [
    path.join(xdsRoot, 'deps', 'envoy-api'),
    path.join(xdsRoot, 'deps', 'xds'),
    path.join(xdsRoot, 'deps', 'googleapis'),
    path.join(xdsRoot, 'deps', 'protoc-gen-validate'),
    protobufRoot,
  ];
}

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** Options for decoding: enums by name, 64-bit integers as strings, Any expanded with "@type". */
export const DECODE_OPTIONS: protobuf.IConversionOptions = Object.freeze({
  enums: String,
  longs: String,
  bytes: String,
  json: true,
  defaults: false,
  oneofs: false,
});

let cached: protobuf.Root | undefined;

/**
 * The descriptor `npm run build` writes next to the compiled protos.js
 * (scripts/copy-assets.ts): envoyDescriptor() of the parsed .proto files.
 */
export const ENVOY_DESCRIPTOR_FILE = 'envoy-protos.json';

/** Options protobufjs reads when it encodes, decodes or checks (field.js, enum.js, object.js); the rest are annotations. */
const KEPT_OPTIONS: ReadonlySet<string> = new Set(['packed', 'default', 'proto3_optional', 'allow_alias', 'map_entry']);

function keptOptions(options: Record<string, unknown>): Record<string, unknown> | undefined {
  const kept = Object.entries(options).filter(([key]) => KEPT_OPTIONS.has(key) || key === 'features' || key.startsWith('features.'));
  return kept.length === 0 ? undefined : Object.fromEntries(kept);
}

/** Keys of a reflection object's JSON whose values are maps of further reflection objects (by name). */
const CHILD_MAPS: ReadonlySet<string> = new Set(['nested', 'fields', 'oneofs', 'methods']);

/**
 * A copy of one reflection object's toJSON() (a namespace, type, field, oneof, enum,
 * service or method) without the options protobufjs does not read at run time:
 * validate rules, udpa/envoy annotations, java_*, deprecated... Names are walked by
 * structure, so a field or type that happens to be called `options` is kept.
 */
function withoutAnnotations(node: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'options') {
      const kept = keptOptions(value as Record<string, unknown>);
      if (kept !== undefined) out.options = kept;
    } else if (key === 'comment' || key === 'comments') {
      // keepComments is off; nothing to carry.
    } else if (CHILD_MAPS.has(key) && value !== null && typeof value === 'object') {
      out[key] = Object.fromEntries(
        Object.entries(value as Record<string, Record<string, unknown>>).map(([name, child]) => [name, withoutAnnotations(child)]),
      );
    } else out[key] = value;
  }
  return out;
}

/**
 * The JSON descriptor of a parsed root (reads it, changes nothing), as the agent
 * loads it: only the types and fields the agent's sources name (proto-names.ts),
 * and without the options the agent never reads. A root built from it encodes the
 * agent's resources exactly as the parsed one (test/lib/envoy).
 * Why: the parsed root keeps every .proto file's text alive (names and option
 * values are slices of it) and the options themselves, 1.2 MB of sources and
 * about 1.5 MB of options in the agent's heap; and a root of every type the
 * resources reach is 3.8 MB, against 1.3 MB for the named ones.
 */
export function envoyDescriptor(root: protobuf.Root, names: ReadonlySet<string>): protobuf.INamespace {
  const json = withoutAnnotations(root.toJSON({ keepComments: false }) as Record<string, unknown>);
  return JSON.parse(JSON.stringify(selectedJson(json, selectProtos(root, names)))) as protobuf.INamespace;
}

/** Parses the Envoy .proto files (about a second); envoyRoot() uses the descriptor the build made from them when it exists. */
export function parseEnvoyProtos(): protobuf.Root {
  const dirs = envoyProtoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync([...ENVOY_PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return root;
}

/** The descriptor the build wrote next to this module (dist/lib/envoy/), or undefined when run from source. */
function builtDescriptor(): protobuf.INamespace | undefined {
  const file = new URL(ENVOY_DESCRIPTOR_FILE, import.meta.url);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as protobuf.INamespace;
}

/**
 * The Envoy protos, once per process: from the descriptor `npm run build` made, or
 * (run from source) parsed from the .proto files and turned into the same descriptor.
 */
export function envoyRoot(): protobuf.Root {
  if (cached !== undefined) return cached;
  try {
    const root = protobuf.Root.fromJSON(
      builtDescriptor() ?? envoyDescriptor(parseEnvoyProtos(), agentSourceNames(fileURLToPath(new URL('../../', import.meta.url)))),
    );
    root.resolveAll();
    cached = root;
  } catch (err) {
    throw new MeshError('MESH_E_PROTO_LOAD', `loading the Envoy protos failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return cached;
}

export function messageType(typeNameOrUrl: string, root: protobuf.Root = envoyRoot()): protobuf.Type {
  const name = typeNameOf(typeNameOrUrl);
  let found: protobuf.ReflectionObject | null = null;
  try {
    found = root.lookup(name);
  } catch {
    found = null;
  }
  if (!(found instanceof protobuf.Type)) {
    throw new MeshError('MESH_E_PROTO_UNKNOWN_TYPE', `unknown protobuf message type ${JSON.stringify(name)}`, {
      details: { type: name },
    });
  }
  return found;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function checkValue(field: protobuf.Field, value: unknown, at: string): void {
  if (value === null || value === undefined) return;
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    if (typeof value !== 'object' || Array.isArray(value)) {
      // Duration, wrappers and the like have no JSON shorthand in protobufjs.
      throw new MeshError('MESH_E_PROTO_INVALID', `${at} must be an object (${resolved.fullName.slice(1)}), got ${describe(value)}`, {
        details: { path: at, type: resolved.fullName.slice(1) },
      });
    }
    checkObject(resolved, value as Record<string, unknown>, at);
  } else if (resolved instanceof protobuf.Enum) {
    if (typeof value === 'string' && !Object.hasOwn(resolved.values, value)) {
      throw new MeshError(
        'MESH_E_PROTO_INVALID',
        `${at} has unknown enum value ${JSON.stringify(value)} for ${resolved.fullName.slice(1)}`,
        {
          details: { path: at, value },
        },
      );
    }
  } else if (!scalarFits(field.type, value)) {
    throw new MeshError('MESH_E_PROTO_INVALID', `${at} must be a ${field.type}, got ${describe(value)}`, {
      details: { path: at, type: field.type },
    });
  }
}

const NUMERIC = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

function scalarFits(type: string, value: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'bool':
      return typeof value === 'boolean';
    case 'bytes':
      return typeof value === 'string' || value instanceof Uint8Array;
    default:
      // int32, uint64, double, ...: a number, or a decimal string for 64-bit values.
      return typeof value === 'number' || (typeof value === 'string' && NUMERIC.test(value));
  }
}

function checkObject(type: protobuf.Type, obj: Record<string, unknown>, at: string): void {
  if (type.fullName === '.google.protobuf.Any') {
    const typeName = obj['@type'];
    if (typeof typeName === 'string') {
      const inner = messageType(typeName, type.root);
      const { '@type': _ignored, ...rest } = obj;
      checkObject(inner, rest, at);
      return;
    }
  }
  for (const [key, value] of Object.entries(obj)) {
    const field = type.fields[key];
    const here = at === '' ? key : `${at}.${key}`;
    if (field === undefined) {
      throw new MeshError(
        'MESH_E_PROTO_UNKNOWN_FIELD',
        `${here}: ${type.fullName.slice(1)} has no field ${JSON.stringify(key)} among those the agent loads (the fields its sources name: lib/envoy/proto-names.ts)`,
        { details: { path: here, type: type.fullName.slice(1) } },
      );
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        throw new MeshError('MESH_E_PROTO_INVALID', `${here} must be an array, got ${describe(value)}`, { details: { path: here } });
      }
      for (const [i, item] of value.entries()) checkValue(field, item, `${here}[${i}]`);
    } else if (field instanceof protobuf.MapField) {
      if (value !== null && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) checkValue(field, v, `${here}[${JSON.stringify(k)}]`);
      }
    } else {
      checkValue(field, value, here);
    }
  }
}

/**
 * Throws a MeshError naming the field path when obj has a field typeName lacks.
 * root: the agent's (envoyRoot), or parseEnvoyProtos() for what the agent only
 * writes as JSON for Envoy to read (the bootstrap; its tests check it against the
 * whole API).
 */
export function checkMessage(typeNameOrUrl: string, obj: object, root: protobuf.Root = envoyRoot()): void {
  checkObject(messageType(typeNameOrUrl, root), obj as Record<string, unknown>, '');
}

export function encodeMessage(typeNameOrUrl: string, obj: object, root: protobuf.Root = envoyRoot()): Uint8Array {
  const type = messageType(typeNameOrUrl, root);
  checkObject(type, obj as Record<string, unknown>, '');
  const message = type.fromObject(obj as Record<string, unknown>);
  const problem = type.verify(message);
  if (problem !== null) {
    throw new MeshError('MESH_E_PROTO_INVALID', `${type.fullName.slice(1)}: ${problem}`, { details: { type: type.fullName.slice(1) } });
  }
  return type.encode(message).finish();
}

export function decodeMessage(typeNameOrUrl: string, bytes: Uint8Array, root: protobuf.Root = envoyRoot()): Record<string, unknown> {
  const type = messageType(typeNameOrUrl, root);
  return type.toObject(type.decode(bytes), DECODE_OPTIONS);
}

/** Packs obj as a google.protobuf.Any of the given type (type URL or full type name). */
export function toAny(typeNameOrUrl: string, obj: object): AnyMessage {
  const name = typeNameOf(typeNameOrUrl);
  return { type_url: typeUrlOf(name), value: encodeMessage(name, obj) };
}

/** Unpacks an Any into its type URL and a plain object (decoded with DECODE_OPTIONS). */
export function fromAny(any: AnyMessage): { typeUrl: string; value: Record<string, unknown> } {
  return { typeUrl: any.type_url, value: decodeMessage(any.type_url, any.value) };
}
