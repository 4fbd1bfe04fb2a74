/**
 * `meshctl policy` as the built program (dist/) against a real control plane
 * (SQLite, admin socket): apply from a file and from stdin (no TTY), get as
 * YAML and JSON, list, diff, delete, an invalid apply that stores nothing and
 * prints field paths, audit rows, and --help of every command.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { startTestControlPlane, type TestControlPlane } from '../support/controlplane.js';
import { applyPolicies, meshctl } from '../support/policy.js';
import { tempDir } from '../support/temp-dir.js';

t.setTimeout(180_000);

const ROUTE = `apiVersion: mesh.v1
kind: TrafficRoute
metadata:
  name: api
spec:
  service: api
  subsets:
    - name: v1
      tags: [v1]
    - name: v2
      meta: { version: v2 }
  http:
    - name: canary
      match:
        headers:
          - name: x-canary
            exact: "1"
      destinations:
        - subset: v2
    - name: default
      destinations:
        - subset: v1
          weight: 90
        - subset: v2
          weight: 10
      timeout: 2s
`;

const IDENTITY = `apiVersion: mesh.v1
kind: ServiceIdentity
metadata:
  name: api
spec:
  service: api
  allowedIdentities:
    - spiffe://example.org/ns/default/sa/api
    - spiffe://example.org/ns/default/sa/api-canary
`;

const AUTHZ_JSON = JSON.stringify([
  {
    apiVersion: 'mesh.v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'api-callers' },
    spec: {
      target: { service: 'api' },
      defaultAction: 'deny',
      rules: [{ name: 'web', action: 'allow', from: { ids: ['spiffe://example.org/ns/default/sa/web'] } }],
    },
  },
]);

async function startCp(t: Test): Promise<TestControlPlane> {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  return tcp;
}

t.test('apply from a file and from stdin, get, list, diff, delete', async (t) => {
  const tcp = await startCp(t);
  const work = await tempDir(t, 'mesh-policy-');
  const file = path.join(work, 'policies.yaml');
  await writeFile(file, `${ROUTE}---\n${IDENTITY}`);
  const heard: number[] = [];
  tcp.cp.policies.onChange((revision) => heard.push(revision));

  const applied = await meshctl(tcp, ['policy', 'apply', '-f', file]);
  t.equal(applied.code, 0, applied.stderr);
  t.equal(applied.stdout, 'TrafficRoute/api created\nServiceIdentity/api created\nrevision 1 (2 created, 0 updated, 0 unchanged)\n');
  t.same(heard, [1], 'the store told its listeners');

  const fromStdin = await applyPolicies(tcp, `${IDENTITY}---\n${AUTHZ_JSON}\n`);
  t.same(fromStdin, {
    revision: 2,
    changes: [
      { kind: 'ServiceIdentity', name: 'api', action: 'unchanged' },
      { kind: 'AuthorizationPolicy', name: 'api-callers', action: 'created' },
    ],
  });
  const jsonArray = await meshctl(tcp, ['policy', 'apply', '-f', '-', '--json'], AUTHZ_JSON);
  t.same(JSON.parse(jsonArray.stdout), {
    revision: 2,
    changes: [{ kind: 'AuthorizationPolicy', name: 'api-callers', action: 'unchanged' }],
  });

  const yamlOut = await meshctl(tcp, ['policy', 'get', 'trafficroute', 'api', '-o', 'yaml']);
  t.equal(yamlOut.code, 0, yamlOut.stderr);
  t.match(yamlOut.stdout, /^# TrafficRoute api: version 1, revision 1, updated \S+ by admin\n/);
  t.same(parse(yamlOut.stdout), parse(ROUTE), 'get -o yaml prints the document as applied');
  const again = await meshctl(tcp, ['policy', 'apply', '-f', '-'], yamlOut.stdout);
  t.match(again.stdout, 'TrafficRoute/api unchanged', 'and it applies again unchanged');
  const jsonOut = await meshctl(tcp, ['policy', 'get', 'AuthorizationPolicy', 'api-callers', '-o', 'json']);
  t.same(JSON.parse(jsonOut.stdout), JSON.parse(AUTHZ_JSON)[0]);

  const list = await meshctl(tcp, ['policy', 'list']);
  t.equal(list.code, 0, list.stderr);
  const rows = list.stdout.trimEnd().split('\n');
  t.match(rows[0], /^KIND\s+NAME\s+VERSION\s+REVISION\s+UPDATED\s+BY$/);
  t.match(rows.slice(1, 4), [
    /^AuthorizationPolicy\s+api-callers\s+1\s+2\s+\S+\s+admin$/,
    /^ServiceIdentity\s+api\s+1\s+1\s/,
    /^TrafficRoute\s+api\s+1\s+1\s/,
  ]);
  t.equal(rows[4], '3 resources, mesh revision 2');
  const listed = JSON.parse((await meshctl(tcp, ['policy', 'list', '--kind', 'TrafficRoute', '--json'])).stdout);
  t.match(listed, { revision: 2, resources: [{ kind: 'TrafficRoute', name: 'api', version: 1, revision: 1, updatedBy: 'admin' }] });
  t.equal(listed.resources.length, 1);

  const changed = ROUTE.replace('timeout: 2s', 'timeout: 5s').replace('weight: 10', 'weight: 30');
  const diff = await meshctl(
    tcp,
    ['policy', 'diff', '-f', '-'],
    `${changed}---\n${IDENTITY}---\n${IDENTITY.replace(/ api\n/g, ' web\n').replace(/sa\/api(-canary)?/g, 'sa/web')}`,
  );
  t.equal(diff.code, 0, diff.stderr);
  t.match(diff.stdout, 'TrafficRoute/api would be updated\n');
  t.match(diff.stdout, '  ~ spec.http[1].destinations[1].weight: 10 -> 30\n');
  t.match(diff.stdout, '  ~ spec.http[1].timeout: "2s" -> "5s"\n');
  t.match(diff.stdout, 'ServiceIdentity/api unchanged\n');
  t.match(diff.stdout, 'ServiceIdentity/web would be created\n  + apiVersion: mesh.v1\n');
  t.match(diff.stdout, 'revision 2: nothing stored');
  t.equal(tcp.cp.policies.revision(), 2, 'diff stored nothing');
  t.match(tcp.cp.policies.get('TrafficRoute', 'api'), { version: 1 });
  const diffJson = JSON.parse((await meshctl(tcp, ['policy', 'diff', '-f', '-', '--json'], changed)).stdout);
  t.same(diffJson.changes[0].fields, [
    { op: 'changed', path: 'spec.http[1].destinations[1].weight', before: 10, after: 30 },
    { op: 'changed', path: 'spec.http[1].timeout', before: '2s', after: '5s' },
  ]);

  const updated = await applyPolicies(tcp, changed);
  t.same(updated, { revision: 3, changes: [{ kind: 'TrafficRoute', name: 'api', action: 'updated' }] });
  t.match(tcp.cp.policies.get('TrafficRoute', 'api'), { version: 2, revision: 3 });

  const deleted = await meshctl(tcp, ['policy', 'delete', 'TrafficRoute', 'api']);
  t.equal(deleted.stdout, 'TrafficRoute/api deleted\nrevision 4\n');
  const gone = await meshctl(tcp, ['policy', 'get', 'TrafficRoute', 'api']);
  t.equal(gone.code, 1);
  t.match(gone.stderr, 'MESH_E_POLICY_NOT_FOUND');
  t.same(heard, [1, 2, 3, 4]);

  const audit = (await meshctl(tcp, ['audit', '--json'])).stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { actor: string; action: string; detail: string })
    .filter((e) => e.action.startsWith('policy.'));
  t.same(
    audit.map((e) => [e.actor, e.action, e.detail]),
    [
      ['admin', 'policy.create', 'TrafficRoute/api version 1 revision 1'],
      ['admin', 'policy.create', 'ServiceIdentity/api version 1 revision 1'],
      ['admin', 'policy.create', 'AuthorizationPolicy/api-callers version 1 revision 2'],
      ['admin', 'policy.update', 'TrafficRoute/api version 2 revision 3'],
      ['admin', 'policy.delete', 'TrafficRoute/api version 2 revision 4'],
    ],
  );
});

t.test('an invalid apply stores nothing and prints every problem with its field path', async (t) => {
  const tcp = await startCp(t);
  await applyPolicies(tcp, IDENTITY);
  const bad = [
    ROUTE.replace('weight: 10', 'weight: 10\n      retries:\n        attempts: 50'),
    IDENTITY.replace('name: api\n', 'name: api-2\n'),
    ROUTE.replace('name: api\n', 'name: web\n')
      .replace('service: api', 'service: web')
      .replace('- subset: v2\n    - name: default', '- subset: v7\n    - name: default'),
  ].join('---\n');
  const r = await meshctl(tcp, ['policy', 'apply', '-f', '-'], bad);
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, 'MESH_E_POLICY_INVALID');
  t.match(r.stderr, 'document 1 (TrafficRoute api): spec.http[1].retries.attempts: ');
  t.match(r.stderr, 'document 2 (ServiceIdentity api-2): spec.service: conflicts with ServiceIdentity api (stored)');
  t.match(r.stderr, 'document 3 (TrafficRoute web): spec.http[0].destinations[0].subset: subset "v7" is not defined');
  t.match(r.stderr, 'nothing was stored');
  t.same(
    tcp.cp.policies.list().map((p) => `${p.kind}/${p.name}`),
    ['ServiceIdentity/api'],
    'nothing of the apply is stored',
  );
  t.equal(tcp.cp.policies.revision(), 1);

  const syntax = await meshctl(tcp, ['policy', 'apply', '-f', '-'], `${IDENTITY}---\nkind: [unclosed\n`);
  t.equal(syntax.code, 1);
  t.match(syntax.stderr, /document 2 \(unknown kind unnamed\): \(document\): stdin line \d+ column \d+: /);
  const usage = await meshctl(tcp, ['policy', 'get', 'Route', 'api']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, 'is not a policy kind; the kinds are ServiceIdentity, TrafficRoute');
  const missing = await meshctl(tcp, ['policy', 'apply']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, '-f FILE (or -f - for stdin) is required');
});

t.test('every policy command has --help', async (t) => {
  const tcp = await startCp(t);
  for (const command of ['apply', 'diff', 'get', 'list', 'delete']) {
    const r = await meshctl(tcp, ['policy', command, '--help']);
    t.equal(r.code, 0, `policy ${command} --help`);
    t.match(r.stdout, `Usage: meshctl policy ${command} `);
  }
});
