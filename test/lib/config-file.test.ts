import t from 'tap';
import * as z from 'zod';
import { formatFieldPath, loadConfigFile, parseConfigText, validateConfig } from '../../lib/config-file.js';
import { deepFreeze } from '../../lib/deep-freeze.js';
import { isMeshError } from '../../lib/errors.js';

const schema = z.strictObject({
  name: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  consul: z.strictObject({ address: z.string().default('127.0.0.1:8500') }).prefault({}),
  upstreams: z.array(z.strictObject({ service: z.string(), localPort: z.number().int() })).default([]),
});

function issuesOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    if (isMeshError(err, 'MESH_E_CONFIG_INVALID')) return err.details.issues;
    throw err;
  }
  return undefined;
}

t.test('YAML and JSON parse; defaults apply; the result is frozen', async (t) => {
  const yaml = validateConfig(schema, parseConfigText('name: web\nport: 8080\n', 'w.yaml'), 'w.yaml');
  t.same(yaml, { name: 'web', port: 8080, consul: { address: '127.0.0.1:8500' }, upstreams: [] });
  t.ok(Object.isFrozen(yaml));
  t.ok(Object.isFrozen(yaml.consul));
  const json = validateConfig(
    schema,
    parseConfigText('{"name":"api","port":9000,"upstreams":[{"service":"db","localPort":9001}]}', 'a.json'),
    'a.json',
  );
  t.equal(json.upstreams[0]?.service, 'db');
  t.ok(Object.isFrozen(json.upstreams[0]));
  t.same(parseConfigText('', 'empty.yaml'), {});
});

t.test('every problem names the field path; unknown keys are rejected', async (t) => {
  const issues = issuesOf(() =>
    validateConfig(schema, { name: '', port: 70000, extra: 1, upstreams: [{ service: 'db', localPort: 'x', typo: true }] }, 'bad.yaml'),
  );
  t.match(issues, [
    { path: 'name', message: /.+/ },
    { path: 'port', message: /65535/ },
    { path: 'upstreams[0].localPort', message: /number/ },
    { path: 'upstreams[0].typo', message: 'unknown field' },
    { path: 'extra', message: 'unknown field' },
  ]);
  const err = t.throws(() => validateConfig(schema, { name: 'x', port: 0 }, '/etc/mesh/w.yaml'));
  t.match((err as Error).message, /^\/etc\/mesh\/w\.yaml: invalid configuration:\n {2}port: /);
});

t.test('YAML syntax errors name the file and line', async (t) => {
  const err = t.throws(() => parseConfigText('name: web\n  port: [1,\n', 'broken.yaml'));
  t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'));
  t.match((err as Error).message, /broken\.yaml: invalid configuration:\n {2}\(document\): line \d+ column \d+: /);
  t.throws(() => parseConfigText('a: 1\na: 2\n', 'dup.yaml'), { code: 'MESH_E_CONFIG_INVALID' });
});

t.test('loadConfigFile reads the file or says why not', async (t) => {
  const dir = t.testdir({ 'ok.yaml': 'name: web\nport: 1\n' });
  t.equal((await loadConfigFile(schema, `${dir}/ok.yaml`)).name, 'web');
  await t.rejects(loadConfigFile(schema, `${dir}/missing.yaml`), {
    code: 'MESH_E_CONFIG_INVALID',
    message: /missing\.yaml: cannot read/,
    details: { issues: [{ message: 'ENOENT' }] },
  });
});

t.test('helpers', async (t) => {
  t.equal(formatFieldPath(['a', 0, 'b', 'c', 2]), 'a[0].b.c[2]');
  t.equal(formatFieldPath([]), '');
  const frozen = deepFreeze({ a: { b: [1, { c: 2 }] } });
  t.ok(Object.isFrozen(frozen.a.b[1]));
  t.equal(deepFreeze(null), null);
});
