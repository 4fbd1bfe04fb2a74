/**
 * The host's IPv6 address in the catalog: registration (tagged addresses
 * lan_ipv4 and lan_ipv6 beside mesh, in both modes' bodies) and the parse of
 * health entries back (CatalogInstance.address6, only a real IPv6 address).
 */
import t from 'tap';
import { toInstance } from '../../../agent/discovery/catalog-view.js';
import { agentServiceBody, catalogRegisterBody, type Json, toHealthEntry } from '../../../agent/discovery/consul-bodies.js';
import { toRegistration } from '../../../agent/discovery/registration.js';
import { web } from '../dataplane/policy-fixtures.js';

const node = { nodeName: 'vm1', nodeAddress: '10.0.0.1', datacenter: '' };

t.test('with an IPv6 address: lan_ipv4 and lan_ipv6 on the app port, mesh unchanged, in both modes', async (t) => {
  const reg = toRegistration(web, { nodeName: 'vm1', address: '10.0.0.1', address6: 'fd00:77::2', zone: '' });
  t.equal(reg.address, '10.0.0.1', 'the main address stays the IPv4 one');
  const tagged = {
    mesh: { Address: '10.0.0.1', Port: 18080 },
    lan_ipv4: { Address: '10.0.0.1', Port: 8080 },
    lan_ipv6: { Address: 'fd00:77::2', Port: 8080 },
  };
  t.same(agentServiceBody(reg, 15_000).TaggedAddresses, tagged, 'agent mode');
  t.same((catalogRegisterBody(reg, node).Service as Json).TaggedAddresses, tagged, 'catalog mode');
});

t.test('without one: only the mesh tagged address, as before', async (t) => {
  const reg = toRegistration(web, { nodeName: 'vm1', address: '10.0.0.1', zone: '' });
  t.notOk('address6' in reg);
  t.same(agentServiceBody(reg, 15_000).TaggedAddresses, { mesh: { Address: '10.0.0.1', Port: 18080 } });
});

const entry = (lanIpv6: unknown): Json => ({
  Node: { Node: 'vm2', Address: '10.0.0.2', Datacenter: 'dc1' },
  Service: {
    ID: 'api-vm2',
    Service: 'api',
    Address: '10.0.0.2',
    Port: 9000,
    TaggedAddresses: {
      mesh: { Address: '10.0.0.2', Port: 19000 },
      lan_ipv4: { Address: '10.0.0.2', Port: 9000 },
      ...(lanIpv6 === undefined ? {} : { lan_ipv6: lanIpv6 }),
    },
  },
  Checks: [{ Status: 'passing' }],
});

t.test('the catalog parse reads address6 from lan_ipv6; the instance carries it', async (t) => {
  const parsed = toHealthEntry(entry({ Address: 'fd00:77::3', Port: 9000 }));
  t.equal(parsed.address6, 'fd00:77::3');
  t.equal(parsed.taggedMeshPort, 19000);
  const instance = toInstance(parsed);
  t.equal(instance?.address6, 'fd00:77::3');
  t.equal(instance?.address, '10.0.0.2', 'the main address, where the mesh hop goes, is unchanged');
  t.equal(instance?.meshPort, 19000);
});

t.test('anything in lan_ipv6 but an IPv6 address is ignored', async (t) => {
  for (const bad of [
    undefined,
    null,
    {},
    { Address: '' },
    { Address: '10.0.0.2' },
    { Address: 'api.example.org' },
    { Address: 42 },
    'fd00::1',
  ])
    t.notOk('address6' in toHealthEntry(entry(bad)), JSON.stringify(bad));
  t.notOk('address6' in (toInstance(toHealthEntry(entry({ Address: 'not-an-ip' }))) ?? {}), 'and so the instance has none');
});
