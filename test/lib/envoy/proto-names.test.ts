/** Which Envoy types and fields the agent loads: the ones its sources name (lib/envoy/proto-names.ts). */
import protobuf from 'protobufjs';
import t from 'tap';
import { selectedJson, selectProtos, sourceNames } from '../../../lib/envoy/proto-names.js';

t.test('sourceNames: every word, and the parts of dotted words', async (t) => {
  const names = sourceNames([
    "const PKG = 'envoy.service.discovery.v3';\nreturn { connect_timeout: { seconds: '5' } }; // per_connection_buffer_limit_bytes",
    'x.load_assignment = 1',
  ]);
  for (const name of [
    'PKG',
    'envoy.service.discovery.v3',
    'envoy',
    'discovery',
    'v3',
    'connect_timeout',
    'seconds',
    'per_connection_buffer_limit_bytes',
    'x.load_assignment',
    'load_assignment',
  ]) {
    t.ok(names.has(name), name);
  }
  t.notOk(names.has('5'));
  t.notOk(names.has('return {'));
});

const PROTO = `
syntax = "proto3";
package demo.v1;
message Top {
  string name = 1;
  Inner inner = 2;
  Unused unused = 3;
  google.protobuf.Duration timeout = 4;
  oneof pick { string a = 5; string b = 6; }
  map<string, Inner> by_name = 7;
  enum Kind { K0 = 0; K1 = 1; }
  Kind kind = 8;
  message Nested { string n = 1; }
}
message Inner { string value = 1; string other = 2; }
message Unused { string value = 1; }
message Holder { message Deep { string value = 1; } }
message FromPackage { string value = 1; }
`;

const DURATION = 'syntax = "proto3"; package google.protobuf; message Duration { int64 seconds = 1; int32 nanos = 2; }';

function demoRoot(): protobuf.Root {
  const root = new protobuf.Root();
  protobuf.parse(DURATION, root, { keepCase: true });
  protobuf.parse(PROTO, root, { keepCase: true });
  root.resolveAll();
  return root;
}

t.test('selectProtos: roots by full name or by package and short name; fields by name, with their types', async (t) => {
  const root = demoRoot();
  const names = new Set(['demo.v1.Top', 'demo.v1', 'FromPackage', 'name', 'inner', 'timeout', 'a', 'by_name', 'value', 'kind', 'Deep']);
  const selection = selectProtos(root, names);
  t.strictSame(
    [...selection.types].sort(),
    ['.demo.v1.FromPackage', '.demo.v1.Inner', '.demo.v1.Top', '.demo.v1.Top.Kind', '.google.protobuf.Duration'],
    'Unused and Nested are not reached; Holder.Deep is named but its package with it is not a name',
  );
  t.equal(selection.fields.get('.demo.v1.Top/inner'), '.demo.v1.Inner', 'a message field: its full type name');
  t.equal(selection.fields.get('.demo.v1.Top/name'), 'string');
  t.equal(selection.fields.get('.demo.v1.Top/by_name'), '.demo.v1.Inner', 'a map: its value type');
  t.equal(selection.fields.get('.google.protobuf.Duration/nanos'), 'int32', 'well-known types keep every field');
  t.notOk(selection.fields.has('.demo.v1.Top/unused'));
  t.notOk(selection.fields.has('.demo.v1.Top/b'));
  t.notOk(selection.fields.has('.demo.v1.Inner/other'));
});

t.test('selectedJson: a root from it encodes the named fields as the full root does, and has nothing else', async (t) => {
  const root = demoRoot();
  const names = new Set(['demo.v1.Top', 'name', 'inner', 'timeout', 'a', 'by_name', 'value', 'kind']);
  const json = selectedJson(root.toJSON() as Record<string, unknown>, selectProtos(root, names));
  const small = protobuf.Root.fromJSON(json as protobuf.INamespace);
  small.resolveAll();
  const message = {
    name: 'n',
    inner: { value: 'v' },
    timeout: { seconds: 3, nanos: 5 },
    a: 'x',
    by_name: { k: { value: 'w' } },
    kind: 'K1',
  };
  const full = root.lookupType('demo.v1.Top');
  const cut = small.lookupType('demo.v1.Top');
  t.equal(
    Buffer.from(cut.encode(cut.fromObject(message)).finish()).toString('hex'),
    Buffer.from(full.encode(full.fromObject(message)).finish()).toString('hex'),
  );
  t.strictSame(Object.keys(cut.fields).sort(), ['a', 'by_name', 'inner', 'kind', 'name', 'timeout']);
  t.strictSame(cut.oneofs.pick?.oneof, ['a'], 'a oneof keeps its named members');
  t.equal(cut.fields.inner?.type, '.demo.v1.Inner', 'field types are full names');
  t.equal(small.lookup('demo.v1.Unused'), null);
  t.equal(small.lookup('demo.v1.Holder'), null, 'a namespace left empty goes');
  t.equal(small.lookup('demo.v1.Top.Nested'), null);
});
