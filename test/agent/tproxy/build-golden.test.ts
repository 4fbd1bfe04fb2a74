import t from 'tap';
import { buildRuleSet } from '../../../agent/tproxy/build.js';
import { renderPlan } from '../../../agent/tproxy/render.js';
import { COMMENT_PREFIX } from '../../../agent/tproxy/rules.js';
import { matchGolden } from '../../support/golden.js';
import { FACTS, tpConfig } from './tproxy-fixtures.js';

/** The plan text per family (what `mesh-agent tproxy plan` prints), golden per config. */
const cases: { name: string; config: Record<string, unknown>; facts?: Partial<typeof FACTS> }[] = [
  { name: 'default', config: {} },
  { name: 'inbound-only', config: { outbound: { enabled: false } } },
  {
    name: 'outbound-exclusions',
    config: {
      inbound: { enabled: false },
      outbound: { excludeCIDRs: ['192.168.0.0/16', 'fd12::/16'], excludePorts: [5432, 22], excludeUIDs: [1001], excludeGIDs: [2002] },
    },
    facts: { excludeUids: [1003] },
  },
  { name: 'registry-only', config: { outbound: { policy: 'registryOnly' } } },
  { name: 'dns-capture', config: { dns: { capture: true } } },
  { name: 'ipv6-off', config: {}, facts: { ipv6: false } },
  { name: 'agent-non-root', config: { dns: { capture: true } }, facts: { agentUid: 1000, envoyUid: 1000, envoyGid: 1000 } },
  { name: 'inbound-list-excludes', config: { inbound: { ports: [8080], excludePorts: [9090] } }, facts: { inboundPorts: [8080] } },
];

for (const c of cases) {
  t.test(`golden rules: ${c.name}`, async (t) => {
    const set = buildRuleSet(tpConfig(c.config), { ...FACTS, ...c.facts });
    matchGolden(t, `tproxy/${c.name}.json`, {
      ipv4: renderPlan(set, 'ipv4').split('\n'),
      ipv6: renderPlan(set, 'ipv6').split('\n'),
    });
    for (const rule of set.rules) {
      t.ok(rule.comment.length > 0 && rule.comment.length + COMMENT_PREFIX.length < 250, `comment fits: ${rule.comment}`);
      t.ok(rule.chain.startsWith('MESH_') || ['PREROUTING', 'OUTPUT'].includes(rule.chain), `chain ${rule.chain}`);
    }
  });
}

t.test('ipv6 off: no IPv6 rules at all', async (t) => {
  const set = buildRuleSet(tpConfig(), { ...FACTS, ipv6: false });
  t.same(renderPlan(set, 'ipv6'), '');
  t.notOk(renderPlan(set, 'ipv4').includes('fd00::5'), 'IPv6 addresses left out');
});

t.test("Envoy's owner RETURNs come first in MESH_OUTPUT, the redirect last", async (t) => {
  const set = buildRuleSet(tpConfig(), FACTS);
  const out = set.rules.filter((r) => r.chain === 'MESH_OUTPUT');
  t.same(out[0]?.match, ['-m', 'owner', '--uid-owner', '995']);
  t.same(out[1]?.match, ['-m', 'owner', '--gid-owner', '995']);
  t.same(out.at(-1)?.target, ['-j', 'MESH_REDIRECT']);
  t.ok(
    out.some((r) => r.match.join(' ') === '-p tcp -m tcp --dport 22'),
    'SSH always excluded',
  );
  t.ok(
    out.some((r) => r.match.join(' ') === '-d 169.254.169.254/32'),
    'metadata excluded',
  );
  t.notOk(
    out.some((r) => r.match.join(' ') === '-m owner --uid-owner 0'),
    'a root agent is not exempted by owner',
  );
});

t.test('nothing enabled: an empty set', async (t) => {
  const set = buildRuleSet(tpConfig({ inbound: { enabled: false }, outbound: { enabled: false } }), FACTS);
  t.same(set, { chains: [], rules: [] });
});
