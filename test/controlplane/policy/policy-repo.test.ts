/**
 * The policy store on real SQLite: migration 2 on an existing v1 database,
 * versions and the mesh revision, unchanged documents, all-or-nothing applies
 * with field paths, reference and conflict errors, audit rows, listeners and
 * dry runs.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { PolicyRepo } from '../../../controlplane/policy/policy-repo.js';
import { AuditRepo } from '../../../controlplane/store/audit-repo.js';
import { openDb, schemaVersion } from '../../../controlplane/store/db.js';
import { MIGRATIONS } from '../../../controlplane/store/migrations.js';
import { MeshError } from '../../../lib/errors.js';
import { FakeClock } from '../../fakes/clock.js';
import { tempDir } from '../../support/temp-dir.js';
import { authz, identity, peerAuth, route, TD } from './policy-fixtures.js';

async function repo(t: Test) {
  const dir = await tempDir(t, 'mesh-policy-');
  const db = openDb(path.join(dir, 'cp.db'));
  t.teardown(() => db.close());
  const clock = new FakeClock();
  const audit = new AuditRepo(db);
  return { db, audit, clock, repo: new PolicyRepo({ db, audit, trustDomain: TD, clock }) };
}

function problemsOf(t: Test, fn: () => unknown): Array<Record<string, unknown>> {
  try {
    fn();
  } catch (err) {
    t.ok(err instanceof MeshError && err.code === 'MESH_E_POLICY_INVALID', `MESH_E_POLICY_INVALID, got ${String(err)}`);
    return (err as MeshError).details.problems as Array<Record<string, unknown>>;
  }
  t.fail('expected MESH_E_POLICY_INVALID');
  return [];
}

t.test('migration 2 on an existing v1 database keeps its rows and starts at revision 0', async (t) => {
  const dir = await tempDir(t, 'mesh-policy-');
  const file = path.join(dir, 'cp.db');
  const v1 = openDb(
    file,
    MIGRATIONS.filter((m) => m.version === 1),
  );
  t.equal(schemaVersion(v1), 1);
  v1.prepare("INSERT INTO meta (key, value) VALUES ('trust_domain', 'example.org')").run();
  new AuditRepo(v1).insert({ at: 1, actor: 'admin', action: 'node.revoke', result: 'ok' });
  v1.close();

  const db = openDb(
    file,
    MIGRATIONS.filter((m) => m.version <= 2),
  );
  t.teardown(() => db.close());
  t.equal(schemaVersion(db), 2, 'migrated to 2');
  t.same(db.prepare("SELECT value FROM meta WHERE key = 'trust_domain'").get(), { value: 'example.org' }, 'v1 rows kept');
  t.equal(new AuditRepo(db).list().length, 1, 'audit kept');
  const store = new PolicyRepo({ db, audit: new AuditRepo(db), trustDomain: TD, clock: new FakeClock() });
  t.equal(store.revision(), 0);
  t.same(store.list(), []);
  const columns = (db.prepare('PRAGMA table_info(policies)').all() as Array<{ name: string; pk: number }>).map((c) => [c.name, c.pk]);
  t.same(columns, [
    ['kind', 1],
    ['name', 2],
    ['version', 0],
    ['revision', 0],
    ['source_json', 0],
    ['updated_at', 0],
    ['updated_by', 0],
  ]);
});

t.test('versions per resource, one revision bump per apply, unchanged bumps nothing', async (t) => {
  const { repo: store, clock } = await repo(t);
  const first = store.apply([route('api', 'api'), identity('api-id', 'api', [`spiffe://${TD}/ns/default/sa/api`])], 'admin');
  t.equal(first.revision, 1);
  t.same(
    first.changes.map((c) => [c.kind, c.name, c.action]),
    [
      ['TrafficRoute', 'api', 'created'],
      ['ServiceIdentity', 'api-id', 'created'],
    ],
  );
  t.match(store.get('TrafficRoute', 'api'), {
    version: 1,
    revision: 1,
    updatedBy: 'admin',
    updatedAtMs: clock.now(),
    source: route('api', 'api'),
  });

  clock.advance(1000);
  const same = store.apply([route('api', 'api'), identity('api-id', 'api', [`spiffe://${TD}/ns/default/sa/api`])], 'admin');
  t.equal(same.revision, 1, 'nothing changed: same revision');
  t.same(
    same.changes.map((c) => c.action),
    ['unchanged', 'unchanged'],
  );
  t.equal(store.revision(), 1);

  const reordered = { spec: route('api', 'api').spec, metadata: { name: 'api' }, kind: 'TrafficRoute', apiVersion: 'mesh.v1' };
  t.equal(store.apply([reordered], 'admin').changes[0]?.action, 'unchanged', 'key order does not matter');

  const changed = route('api', 'api', { http: [{ name: 'default', destinations: [{ subset: 'v2' }] }] });
  const second = store.apply([changed, identity('api-id', 'api', [`spiffe://${TD}/ns/default/sa/api`])], 'ops');
  t.equal(second.revision, 2);
  t.same(
    second.changes.map((c) => c.action),
    ['updated', 'unchanged'],
  );
  t.same(second.changes[0]?.before, route('api', 'api'), 'the change carries the stored document');
  t.same(second.changes[0]?.after, changed);
  t.match(store.get('TrafficRoute', 'api'), { version: 2, revision: 2, updatedBy: 'ops', updatedAtMs: clock.now() });
  t.match(store.get('ServiceIdentity', 'api-id'), { version: 1, revision: 1 }, 'the unchanged resource keeps its revision');

  const third = store.apply([route('web', 'web'), peerAuth('api-pa', 'api')], 'admin');
  t.equal(third.revision, 3, 'two new resources: one bump');
  t.match(store.get('TrafficRoute', 'web'), { version: 1, revision: 3 });
  t.match(store.get('PeerAuthentication', 'api-pa'), { version: 1, revision: 3 });
  t.same(
    store.list().map((r) => `${r.kind}/${r.name}`),
    ['PeerAuthentication/api-pa', 'ServiceIdentity/api-id', 'TrafficRoute/api', 'TrafficRoute/web'],
  );
  t.same(
    store.list('TrafficRoute').map((r) => r.name),
    ['api', 'web'],
  );
});

t.test('all-or-nothing: a bad third document stores nothing and names index, kind, name and path', async (t) => {
  const { repo: store, db, audit } = await repo(t);
  const bad = route('db', 'db', { http: [{ name: 'default', destinations: [{ subset: 'v1' }], retries: { attempts: 99 } }] });
  const problems = problemsOf(t, () => store.apply([route('api', 'api'), route('web', 'web'), bad], 'admin'));
  t.same(problems, [{ index: 2, kind: 'TrafficRoute', name: 'db', path: 'spec.http[0].retries.attempts', message: problems[0]?.message }]);
  t.match(String(problems[0]?.message), /10/);
  t.same(store.list(), [], 'nothing stored');
  t.equal(store.revision(), 0);
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM policies').get() as { n: number }).n, 0);
  t.match(audit.list(), [{ actor: 'admin', action: 'policy.apply', result: 'MESH_E_POLICY_INVALID' }], 'the refusal is audited');

  try {
    store.apply([route('api', 'api'), { apiVersion: 'mesh.v1', kind: 'Nope', metadata: { name: 'x' }, spec: {} }], 'admin');
  } catch (err) {
    t.match((err as Error).message, /document 2 \(Nope x\): kind: /, 'the message lists each problem, counting documents from 1');
  }
});

t.test('references that resolve to nothing, http with tcp, duplicates and the trust domain', async (t) => {
  const { repo: store } = await repo(t);
  const problems = problemsOf(t, () =>
    store.apply(
      [
        route('api', 'api', {
          http: [
            { name: 'a', destinations: [{ subset: 'v3' }], mirror: { subset: 'shadow', percent: 10 } },
            { name: 'a', destinations: [{ subset: 'v2' }] },
          ],
          tcp: { destinations: [{ subset: 'v9' }] },
        }),
        identity('api-id', 'api', ['spiffe://other.org/ns/default/sa/api']),
        authz('api-authz', { service: 'api' }, [
          { name: 'web', action: 'allow', from: { ids: [`spiffe://${TD}/ns/default/sa/web`], idPrefixes: ['spiffe://evil.org/'] } },
        ]),
        route('api', 'web'),
      ],
      'admin',
    ),
  );
  t.same(
    problems.map((p) => [p.index, p.kind, p.name, p.path]),
    [
      [0, 'TrafficRoute', 'api', 'spec.tcp'],
      [0, 'TrafficRoute', 'api', 'spec.http[0].destinations[0].subset'],
      [0, 'TrafficRoute', 'api', 'spec.http[0].mirror.subset'],
      [0, 'TrafficRoute', 'api', 'spec.tcp.destinations[0].subset'],
      [0, 'TrafficRoute', 'api', 'spec.http[1].name'],
      [1, 'ServiceIdentity', 'api-id', 'spec.allowedIdentities[0]'],
      [2, 'AuthorizationPolicy', 'api-authz', 'spec.rules[0].from.idPrefixes[0]'],
      [3, 'TrafficRoute', 'api', 'metadata.name'],
    ],
  );
  t.match(problems[1]?.message, /subset "v3" is not defined in spec.subsets \(defined: v1, v2\)/);
  t.match(problems[5]?.message, /not in this mesh's trust domain example.org/);
  t.same(store.list(), []);
});

t.test('two resources of one kind for one service or target conflict, naming both', async (t) => {
  const { repo: store } = await repo(t);
  store.apply(
    [route('api', 'api'), authz('api-authz', { service: 'api' }), identity('api-id', 'api', [`spiffe://${TD}/ns/default/sa/api`])],
    'admin',
  );

  const problems = problemsOf(t, () =>
    store.apply(
      [
        route('api-2', 'api'),
        authz('api-authz-2', { service: 'api' }),
        identity('api-id-other-ns', 'api', [`spiffe://${TD}/ns/prod/sa/api`], 'prod'),
        peerAuth('pa-1', 'db'),
        peerAuth('pa-2', 'db', 'strict'),
      ],
      'admin',
    ),
  );
  t.same(
    problems.map((p) => [p.index, p.name, p.path]),
    [
      [0, 'api-2', 'spec.service'],
      [1, 'api-authz-2', 'spec.target.service'],
      [4, 'pa-2', 'spec.target.service'],
    ],
    'a ServiceIdentity in another namespace is no conflict',
  );
  t.match(problems[0]?.message, /conflicts with TrafficRoute api \(stored\): both are for service api/);
  t.match(problems[2]?.message, /conflicts with PeerAuthentication pa-1 \(document 4 of this apply\)/);

  const renamed = store.apply([{ ...route('api', 'other') }, route('api-2', 'api')], 'admin');
  t.same(
    renamed.changes.map((c) => c.action),
    ['updated', 'created'],
    'the resulting set counts: a resource that moves away frees its service in the same apply',
  );
  t.ok(store.apply([authz('by-id', { spiffeId: `spiffe://${TD}/ns/default/sa/api` })], 'admin'), 'a spiffeId target is its own target');
  t.same(
    problemsOf(t, () => store.apply([authz('by-id-2', { spiffeId: `spiffe://${TD}/ns/default/sa/api` })], 'admin')).map((p) => p.path),
    ['spec.target.spiffeId'],
  );
});

t.test('a service not in any catalog is fine', async (t) => {
  const { repo: store } = await repo(t);
  t.equal(store.apply([route('ghost', 'not-registered-anywhere')], 'admin').changes[0]?.action, 'created');
});

t.test('audit rows name the actor and the revision; delete bumps the revision', async (t) => {
  const { repo: store, audit } = await repo(t);
  const v2only = route('api', 'api', { http: [{ name: 'default', destinations: [{ subset: 'v2' }] }] });
  store.apply([route('api', 'api')], 'admin');
  store.apply([v2only], 'alice');
  store.apply([v2only], 'alice');
  const deleted = store.delete('TrafficRoute', 'api', 'bob');
  t.equal(deleted.revision, 3);
  t.same(deleted.changes, [{ kind: 'TrafficRoute', name: 'api', action: 'deleted', before: v2only }]);
  t.equal(store.get('TrafficRoute', 'api'), undefined);
  t.same(
    audit.list().map((r) => [r.actor, r.action, r.result, r.detail]),
    [
      ['admin', 'policy.create', 'ok', 'TrafficRoute/api version 1 revision 1'],
      ['alice', 'policy.update', 'ok', 'TrafficRoute/api version 2 revision 2'],
      ['bob', 'policy.delete', 'ok', 'TrafficRoute/api version 2 revision 3'],
    ],
    'the unchanged apply writes no row',
  );
  t.throws(() => store.delete('TrafficRoute', 'api', 'bob'), { code: 'MESH_E_POLICY_NOT_FOUND' });
  t.equal(store.revision(), 3, 'a failed delete bumps nothing');
  const again = store.apply([route('api', 'api')], 'admin');
  t.match(store.get('TrafficRoute', 'api'), { version: 1, revision: 4 }, 'a deleted resource starts again at version 1');
  t.equal(again.changes[0]?.action, 'created');
});

t.test('listeners hear committed changes only, after the commit, with the new revision', async (t) => {
  const { repo: store, db } = await repo(t);
  const heard: Array<[number, number]> = [];
  const off = store.onChange((revision) => {
    t.notOk(db.inTransaction, 'called after the commit');
    heard.push([revision, store.revision()]);
  });
  store.onChange(() => {
    throw new Error('a failing listener does not stop the others');
  });
  store.apply([route('api', 'api')], 'admin');
  store.apply([route('api', 'api')], 'admin');
  store.apply([route('web', 'web')], 'admin', { dryRun: true });
  t.throws(() => store.apply([route('x', 'x', { tcp: { destinations: [{}] } })], 'admin'));
  store.delete('TrafficRoute', 'api', 'admin');
  t.same(heard, [
    [1, 1],
    [2, 2],
  ]);
  off();
  store.apply([route('api', 'api')], 'admin');
  t.equal(heard.length, 2, 'unsubscribed');
});

t.test('a dry run validates and returns the diff without storing', async (t) => {
  const { repo: store, audit } = await repo(t);
  store.apply([route('api', 'api')], 'admin');
  const updated = route('api', 'api', { http: undefined });
  const dry = store.apply([updated, route('web', 'web')], 'admin', { dryRun: true });
  t.equal(dry.revision, 1, 'the current revision');
  t.same(
    dry.changes.map((c) => [c.name, c.action]),
    [
      ['api', 'updated'],
      ['web', 'created'],
    ],
  );
  t.same(dry.changes[0]?.before, route('api', 'api'));
  t.same(dry.changes[0]?.after, updated);
  t.match(store.get('TrafficRoute', 'api'), { version: 1, source: route('api', 'api') }, 'nothing stored');
  t.equal(store.get('TrafficRoute', 'web'), undefined);
  t.equal(audit.list().length, 1, 'a dry run writes no audit row');
  t.same(
    problemsOf(t, () =>
      store.apply([route('db', 'db', { tcp: { destinations: [{ subset: 'zz' }] }, http: undefined })], 'admin', { dryRun: true }),
    ).map((p) => p.path),
    ['spec.tcp.destinations[0].subset'],
    'a dry run reports the same problems',
  );
  t.equal(audit.list().length, 1, 'nor does a refused dry run');
});
