/** What `meshctl policy apply|diff -f` reads: multi-document YAML or JSON, and the field-level diff it prints. */
import t from 'tap';
import { diffValues, formatFieldChange } from '../../../controlplane/cli/policy-diff.js';
import { parsePolicyText } from '../../../controlplane/cli/policy-input.js';
import { MeshError } from '../../../lib/errors.js';

t.test('multi-document YAML, a JSON object and a JSON array', async (t) => {
  t.same(parsePolicyText('kind: A\n---\nkind: B\n---\n', 'f.yaml'), [{ kind: 'A' }, { kind: 'B' }], 'an empty last document is skipped');
  t.same(parsePolicyText('{"kind": "A"}', 'f.json'), [{ kind: 'A' }]);
  t.same(parsePolicyText('[{"kind": "A"}, {"kind": "B"}]', 'f.json'), [{ kind: 'A' }, { kind: 'B' }]);
  t.same(parsePolicyText('kind: A\n---\n- kind: B\n- kind: C\n', 'f.yaml'), [{ kind: 'A' }, { kind: 'B' }, { kind: 'C' }]);
});

t.test('syntax errors and empty input name the document and line', async (t) => {
  const problems = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      t.ok(err instanceof MeshError && err.code === 'MESH_E_POLICY_INVALID');
      return (err as MeshError).details.problems as Array<{ index: number; message: string }>;
    }
    t.fail('expected an error');
    return [];
  };
  const dup = problems(() => parsePolicyText('kind: A\n---\nkind: B\nkind: C\n', 'p.yaml'));
  t.equal(dup[0]?.index, 1);
  t.match(dup[0]?.message, /^p\.yaml line 4 column 1: Map keys must be unique/);
  t.match(problems(() => parsePolicyText('\n# only a comment\n', 'stdin'))[0]?.message, 'stdin holds no documents');
});

t.test('field-level diff with paths', async (t) => {
  const before = { spec: { a: 1, list: [{ x: 1 }, { x: 2 }], gone: true } };
  const after = { spec: { a: 2, list: [{ x: 1 }, { x: 3 }, { x: 4 }], added: 'yes' } };
  const changes = diffValues(before, after);
  t.same(changes.map(formatFieldChange), [
    '  ~ spec.a: 1 -> 2',
    '  ~ spec.list[1].x: 2 -> 3',
    '  + spec.list[2]: {"x":4}',
    '  - spec.gone: true',
    '  + spec.added: "yes"',
  ]);
  t.same(diffValues(before, structuredClone(before)), [], 'equal documents: no change');
  t.same(diffValues({ a: [1] }, { a: { b: 1 } }), [{ op: 'changed', path: 'a', before: [1], after: { b: 1 } }], 'a changed type');
});
