/**
 * Which parts of the Envoy API the agent loads: the message types and fields its
 * own sources name.
 *
 * The .proto files the agent's resources reach hold about 640 message types and
 * enums and 2,200 fields; a protobufjs root of all of them is about 3.8 MB of the
 * agent's heap, and the encoders protobufjs generates for them about 2 MB more.
 * The agent writes a field only where its source spells the field's name (a
 * property of an object literal, or a string it builds a key from), so a field
 * whose name appears nowhere in agent/ or lib/ can never be written by it, and
 * reading one is never needed. The build keeps only the named fields and the
 * types they reach (244 types and enums, 383 fields): 1.3 MB of root.
 *
 * Names are taken generously: every identifier-like word of every source file
 * (comments included), so a name may keep a field it did not mean to; never the
 * other way. A field the agent writes that the descriptor lacks fails loudly:
 * encodeMessage/checkMessage throw MESH_E_PROTO_UNKNOWN_FIELD with its path, and
 * the golden and integration tests encode every resource kind through this root.
 */

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';

/** The source folders (from the repository root) whose names decide what is loaded: the agent bundle is built from them. */
export const AGENT_SOURCE_DIRS: readonly string[] = Object.freeze(['agent', 'lib']);

const WORD = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/g;

/** Pure: every word of the texts, and each dotted word's parts too ('a.b.C' gives 'a.b.C', 'a', 'b', 'C'). */
export function sourceNames(texts: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const text of texts) {
    for (const word of text.match(WORD) ?? []) {
      names.add(word);
      if (word.includes('.')) for (const part of word.split('.')) names.add(part);
    }
  }
  return names;
}

function* sourceTexts(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceTexts(file);
    else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) yield readFileSync(file, 'utf8');
  }
}

/** The names of the agent's sources under a repository root (AGENT_SOURCE_DIRS, .ts files, tests left out). */
export function agentSourceNames(repoRoot: string): Set<string> {
  return sourceNames(AGENT_SOURCE_DIRS.flatMap((dir) => [...sourceTexts(path.join(repoRoot, dir))]));
}

/** What the agent loads of a resolved root: type and enum full names (with the leading dot), and each kept field's type. */
export interface ProtoSelection {
  /** Full names (".envoy.config.cluster.v3.Cluster") of the message types and enums loaded. */
  types: ReadonlySet<string>;
  /** "<type full name>/<field name>" of every field loaded, to the field's type: a full name for messages and enums, the scalar's name otherwise. */
  fields: ReadonlyMap<string, string>;
}

const WELL_KNOWN = '.google.protobuf.';

/**
 * Loaded though the agent's code never writes it: the PROXY protocol listener filter
 * (no fields set), which the capture tests put in front of the capture listeners in
 * place of the iptables REDIRECT (test/integration/capture-envoy.test.ts), through the
 * agent's own encoder.
 */
export const ALSO_LOADED: readonly string[] = Object.freeze(['envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol']);

/**
 * Pure (reads the root, changes nothing): the types and fields the names select.
 * The roots are the types whose full name is a name, or whose package and short
 * name both are (a type URL built from a package constant), and ALSO_LOADED; a field is kept when
 * its name is a name, and its type with it. google.protobuf types keep all their
 * fields (Struct, Any, Duration: their fields are written by protobufjs, not by
 * the agent's sources).
 */
export function selectProtos(root: protobuf.Root, names: ReadonlySet<string>): ProtoSelection {
  const all: (protobuf.Type | protobuf.Enum)[] = [];
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Type || child instanceof protobuf.Enum) all.push(child);
      if (child instanceof protobuf.Namespace) walk(child);
    }
  };
  walk(root);
  const types = new Set<string>();
  const fields = new Map<string, string>();
  const queue: (protobuf.Type | protobuf.Enum)[] = [];
  const keep = (t: protobuf.Type | protobuf.Enum) => {
    if (types.has(t.fullName)) return;
    types.add(t.fullName);
    queue.push(t);
  };
  for (const t of all) {
    const name = t.fullName.slice(1);
    const dot = name.lastIndexOf('.');
    if (names.has(name) || ALSO_LOADED.includes(name) || (names.has(name.slice(dot + 1)) && names.has(name.slice(0, dot)))) keep(t);
  }
  for (let t = queue.pop(); t !== undefined; t = queue.pop()) {
    if (!(t instanceof protobuf.Type)) continue;
    const wellKnown = t.fullName.startsWith(WELL_KNOWN);
    for (const field of t.fieldsArray) {
      if (field.declaringField !== null || field.extend !== undefined) continue;
      if (!wellKnown && !names.has(field.name)) continue;
      const resolved = field.resolvedType;
      if (resolved !== null) keep(resolved);
      fields.set(`${t.fullName}/${field.name}`, resolved === null ? field.type : resolved.fullName);
    }
  }
  return { types, fields };
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Pure: a namespace's JSON (Root.toJSON()) cut down to a selection. Field types
 * are written as full names, so resolving them is one table lookup (relative
 * names made protobufjs fill a lookup cache in every namespace: 0.7 MB).
 * Extension declarations and services go (the agent reads no options, and its ADS
 * server has its own method table); namespaces left empty go.
 */
export function selectedJson(json: Json, selection: ProtoSelection, prefix = ''): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === 'nested' && isObject(value)) {
      const nested: Json = {};
      for (const [name, child] of Object.entries(value)) {
        if (!isObject(child)) continue;
        const full = `${prefix}.${name}`;
        if (child.extend !== undefined || child.methods !== undefined) continue;
        const isType = isObject(child.fields) || isObject(child.values);
        const kept = selectedJson(child, selection, full);
        if (isType && selection.types.has(full)) nested[name] = kept;
        else if (isObject(kept.nested)) {
          // A namespace, or a type only its nested types are loaded from: a namespace of them.
          nested[name] = isType ? { nested: kept.nested } : kept;
        }
      }
      if (Object.keys(nested).length > 0) out.nested = nested;
    } else if (key === 'fields' && isObject(value)) {
      const fields: Json = {};
      for (const [name, field] of Object.entries(value)) {
        const type = selection.fields.get(`${prefix}/${name}`);
        if (type !== undefined && isObject(field)) fields[name] = { ...field, type };
      }
      out.fields = fields;
    } else if (key === 'oneofs' && isObject(value)) {
      const oneofs: Json = {};
      for (const [name, oneof] of Object.entries(value)) {
        const members = ((oneof as { oneof?: string[] }).oneof ?? []).filter((f) => selection.fields.has(`${prefix}/${f}`));
        if (members.length > 0) oneofs[name] = { ...(oneof as Json), oneof: members };
      }
      if (Object.keys(oneofs).length > 0) out.oneofs = oneofs;
    } else out[key] = value;
  }
  return out;
}
