import t from 'tap';
import { inspectRules, installRules, removeRules } from '../../../agent/tproxy/apply.js';
import { buildRuleSet } from '../../../agent/tproxy/build.js';
import { normalizeSave } from '../../../agent/tproxy/render.js';
import { isMeshError } from '../../../lib/errors.js';
import { FakeIptablesRunner } from '../../fakes/iptables.js';
import { FACTS, tpConfig } from './tproxy-fixtures.js';

const FOREIGN_NAT = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FOREIGN - [0:0]
-A OUTPUT -p tcp -j FOREIGN
-A FOREIGN -d 10.9.0.0/16 -m comment --comment "not ours" -j RETURN
COMMIT
`;

async function snapshot(fake: FakeIptablesRunner): Promise<string> {
  const parts: string[] = [];
  for (const family of ['ipv4', 'ipv6'] as const)
    for (const table of ['raw', 'mangle', 'nat', 'filter']) parts.push(normalizeSave(await fake.save(family, table)));
  return parts.join('');
}

t.test('install, reinstall, drift, repair, removal against the fake', async (t) => {
  const fake = new FakeIptablesRunner();
  fake.load('ipv4', FOREIGN_NAT);
  fake.load('ipv6', FOREIGN_NAT.replace('10.9.0.0/16', 'fd09::/16'));
  const before = await snapshot(fake);
  const set = buildRuleSet(tpConfig({ dns: { capture: true } }), FACTS);

  await installRules(fake, set);
  const once = await snapshot(fake);
  t.not(once, before, 'rules installed');
  const clean = await inspectRules(fake, set);
  t.same(clean.missing, []);
  t.same(clean.unexpected, []);
  t.equal(clean.installed, clean.expected);
  t.ok(clean.expected > 20);

  await installRules(fake, set);
  t.equal(await snapshot(fake), once, 'a second install changes nothing');

  const line = (await fake.save('ipv4', 'nat')).split('\n').find((l) => l.includes('--dport 22')) ?? '';
  fake.deleteRule('ipv4', 'nat', line);
  const drift = await inspectRules(fake, set);
  t.equal(drift.missing.length, 1);
  t.match(drift.missing[0], /^ipv4 nat -A MESH_OUTPUT -p tcp --dport 22 /);
  t.equal(drift.installed, clean.expected - 1);
  await installRules(fake, set);
  t.equal(await snapshot(fake), once, 'repaired by a new install');

  const { removed } = await removeRules(fake);
  t.equal(removed, clean.expected);
  t.equal(await snapshot(fake), before, 'foreign rules as before, nothing of ours');
  t.same((await removeRules(fake)).removed, 0, 'a second removal finds nothing');
});

t.test('stale rules of a previous config are replaced in one restore per table and family', async (t) => {
  const fake = new FakeIptablesRunner();
  await installRules(fake, buildRuleSet(tpConfig({ dns: { capture: true } }), { ...FACTS, envoyUid: 1 }));
  const fresh = new FakeIptablesRunner();
  const set = buildRuleSet(tpConfig(), FACTS);
  await installRules(fresh, set);
  fake.restores.length = 0;
  await installRules(fake, set);
  t.equal(fake.restores.length, 2, 'one transaction for nat in each family');
  t.equal(await snapshot(fake), await snapshot(fresh), 'same as a fresh install');
  const inspection = await inspectRules(fake, set);
  t.same([inspection.missing, inspection.unexpected], [[], []]);
});

t.test('unexpected rules of ours are reported', async (t) => {
  const fake = new FakeIptablesRunner();
  const set = buildRuleSet(tpConfig(), FACTS);
  await installRules(fake, set);
  fake.load('ipv4', '*nat\n-A MESH_OUTPUT -p tcp --dport 25 -j RETURN\nCOMMIT\n');
  const inspection = await inspectRules(fake, set);
  t.same(inspection.unexpected, ['ipv4 nat -A MESH_OUTPUT -p tcp --dport 25 -j RETURN']);
});

t.test('a failed restore leaves the table as it was and says why', async (t) => {
  const fake = new FakeIptablesRunner();
  const before = await snapshot(fake);
  fake.failRestores(1, 'iptables-restore: line 3 failed');
  const err = await installRules(fake, buildRuleSet(tpConfig(), FACTS)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isMeshError(err) && err.code === 'MESH_E_TPROXY_IPTABLES', 'MESH_E_TPROXY_IPTABLES');
  t.match((err as Error).message, /line 3 failed/);
  t.equal(await snapshot(fake), before);
});

t.test('IPv6 off on a host without ip6tables: IPv4 only, no error', async (t) => {
  const fake = new FakeIptablesRunner({ ipv6: false });
  const set = buildRuleSet(tpConfig(), { ...FACTS, ipv6: false });
  await installRules(fake, set);
  t.ok(fake.restores.every((r) => r.family === 'ipv4'));
  t.same((await inspectRules(fake, set)).missing, []);
  t.ok((await removeRules(fake)).removed > 0);
});

t.test('turning IPv6 off removes our IPv6 rules on the next install', async (t) => {
  const fake = new FakeIptablesRunner();
  await installRules(fake, buildRuleSet(tpConfig(), FACTS));
  const set = buildRuleSet(tpConfig(), { ...FACTS, ipv6: false });
  await installRules(fake, set);
  t.notMatch(await fake.save('ipv6', 'nat'), /MESH_/);
  t.same((await inspectRules(fake, set)).unexpected, []);
});

t.test('our rules in another order are drift too', async (t) => {
  const fake = new FakeIptablesRunner({ ipv6: false });
  const set = buildRuleSet(tpConfig(), { ...FACTS, ipv6: false });
  await installRules(fake, set);
  const ssh = (await fake.save('ipv4', 'nat')).split('\n').find((l) => l.includes('--dport 22')) ?? '';
  fake.deleteRule('ipv4', 'nat', ssh);
  fake.load('ipv4', `*nat\n-I${ssh.slice(2)}\nCOMMIT\n`);
  const inspection = await inspectRules(fake, set);
  t.same(inspection.missing, []);
  t.same(inspection.unexpected, ['ipv4 nat MESH_OUTPUT: our rules are in another order than expected']);
  await installRules(fake, set);
  t.same((await inspectRules(fake, set)).unexpected, [], 'repaired by an install');
});
