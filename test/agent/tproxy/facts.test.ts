import t from 'tap';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import { parseGroup, parsePasswd, resolveCaptureFacts, resolveEnvoyUser, resolveGroup, resolveUser } from '../../../agent/tproxy/facts.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { isMeshError, type MeshError } from '../../../lib/errors.js';

const PASSWD = `root:x:0:0:root:/root:/bin/bash
# a comment
mesh-envoy:x:995:993::/nonexistent:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
broken line
`;
const GROUP = 'root:x:0:\nmesh-envoy:x:993:\nproxy:x:13:\n';
const accounts = { passwd: PASSWD, group: GROUP };

function config(input: Record<string, unknown> = {}) {
  const parsed = agentConfigSchema().parse({ controlPlane: { address: '10.1.0.1:8443' }, ...input });
  return { ...parsed, nodeName: 'n', trustDomain: 'td', consul: parsed.consul };
}

function workload(name: string, port: number, transparentProxy?: Workload['transparentProxy']): Workload {
  return { name, port, ...(transparentProxy === undefined ? {} : { transparentProxy }) } as Workload;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isMeshError(err) ? err.code : 'not a MeshError';
  }
  return undefined;
}

t.test('passwd and group parsers skip comments and broken lines', async (t) => {
  t.same(
    parsePasswd(PASSWD).map((e) => e.name),
    ['root', 'mesh-envoy', 'alice'],
  );
  t.same(parseGroup(GROUP)[1], { name: 'mesh-envoy', gid: 993 });
});

t.test('users and groups by name or number', async (t) => {
  t.same(resolveUser('mesh-envoy', PASSWD), { uid: 995, gid: 993, name: 'mesh-envoy' });
  t.same(resolveUser('1000', PASSWD), { uid: 1000, gid: 1000, name: 'alice' });
  t.same(resolveUser('4242', PASSWD), { uid: 4242 }, 'a number needs no entry');
  t.equal(resolveGroup('proxy', GROUP), 13);
  t.equal(resolveGroup('777', GROUP), 777);
  t.equal(
    codeOf(() => resolveUser('nobody-here', PASSWD)),
    'MESH_E_TPROXY_USER',
  );
  t.equal(
    codeOf(() => resolveGroup('nogroup-here', GROUP)),
    'MESH_E_TPROXY_USER',
  );
});

t.test("Envoy's user: mesh-envoy for a root agent, else the agent's own", async (t) => {
  t.same(await resolveEnvoyUser(config(), { uid: 0, gid: 0, accounts }), { uid: 995, gid: 993, name: 'mesh-envoy' });
  t.same(await resolveEnvoyUser(config(), { uid: 1000, gid: 1001, accounts }), { uid: 1000, gid: 1001 });
  t.same(await resolveEnvoyUser(config({ envoy: { user: '4242' } }), { uid: 0, gid: 0, accounts }), { uid: 4242, gid: 4242 });
  t.same(await resolveEnvoyUser(config({ envoy: { user: 'alice', group: 'proxy' } }), { uid: 0, gid: 0, accounts }), {
    uid: 1000,
    gid: 13,
    name: 'alice',
  });
  const err = await resolveEnvoyUser(config(), { uid: 0, gid: 0, accounts: { passwd: '', group: '' } }).catch((e: unknown) => e);
  t.equal((err as MeshError).code, 'MESH_E_TPROXY_USER');
  t.match((err as Error).message, /useradd --system .*mesh-envoy.*envoy\.user/);
});

t.test('capture facts from config, workloads and host', async (t) => {
  const workloads = [
    workload('web', 8080),
    workload('api', 9090, { inbound: true, outbound: true }),
    workload('batch', 7000, { inbound: false, outbound: false, runAsUser: 1500 }),
  ];
  const lookups: string[] = [];
  const facts = await resolveCaptureFacts({
    config: config({ consul: { address: 'consul.internal:8500' }, transparentProxy: { enabled: true, inbound: { excludePorts: [9090] } } }),
    workloads,
    host: { uid: 0, gid: 0, accounts },
    lookup: async (host) => {
      lookups.push(host);
      return ['10.1.0.9', 'fd00::9'];
    },
    ipv6Available: async () => false,
  });
  t.same(facts, {
    envoyUid: 995,
    envoyGid: 993,
    agentUid: 0,
    inboundPorts: [8080],
    excludeAddresses: ['10.1.0.1', '10.1.0.9', 'fd00::9'],
    excludeUids: [1500],
    ipv6: false,
  });
  t.same(lookups, ['consul.internal'], 'IPs as is, names looked up, loopback (Consul DNS) left out');
});

t.test('inbound.ports narrows to workload ports; ipv6 on/off ignore the host', async (t) => {
  const base = { workloads: [workload('web', 8080), workload('api', 9090)], host: { uid: 1000, gid: 1000, accounts } };
  const facts = await resolveCaptureFacts({
    ...base,
    config: config({ transparentProxy: { ipv6: 'on', inbound: { ports: [9090, 5555] } } }),
    ipv6Available: async () => false,
  });
  t.same(facts.inboundPorts, [9090], 'a listed port with no workload is not touched');
  t.equal(facts.ipv6, true);
  t.equal(facts.envoyUid, 1000);
});

t.test('without controlPlane.address the control plane stored at join is exempt', async (t) => {
  const parsed = agentConfigSchema().parse({});
  const base = { ...parsed, nodeName: 'n', trustDomain: 'td' };
  const asked: string[] = [];
  const facts = await resolveCaptureFacts({
    config: base,
    workloads: [],
    host: { uid: 1000, gid: 1000, accounts },
    ipv6Available: async () => false,
    joinedControlPlane: async (dir) => {
      asked.push(dir);
      return '10.9.0.4:8443';
    },
  });
  t.same(asked, ['/var/lib/mesh-agent'], 'the join is read from dataDir');
  t.same(facts.excludeAddresses, ['10.9.0.4'], 'the joined address is exempt (Consul on loopback is always)');
  const notJoined = await resolveCaptureFacts({
    config: base,
    workloads: [],
    host: { uid: 1000, gid: 1000, accounts },
    ipv6Available: async () => false,
    joinedControlPlane: async () => undefined,
  });
  t.same(notJoined.excludeAddresses, [], 'before a join there is no control plane to exempt');
  const configured = await resolveCaptureFacts({
    config: config(),
    workloads: [],
    host: { uid: 1000, gid: 1000, accounts },
    ipv6Available: async () => false,
    joinedControlPlane: async () => t.fail('controlPlane.address is set: the join is not read') as never,
  });
  t.same(configured.excludeAddresses, ['10.1.0.1'], 'controlPlane.address wins');
});

t.test('a name that does not resolve, and Envoy as root, are clear errors', async (t) => {
  const err = await resolveCaptureFacts({
    config: config({ controlPlane: { address: 'cp.nowhere:8443' } }),
    workloads: [],
    host: { uid: 1000, gid: 1000, accounts },
    lookup: async () => {
      throw new Error('ENOTFOUND');
    },
  }).catch((e: unknown) => e);
  t.equal((err as MeshError).code, 'MESH_E_TPROXY_RESOLVE');
  t.match((err as Error).message, /controlPlane\.address: cannot resolve "cp\.nowhere"/);
  const root = await resolveCaptureFacts({
    config: config({ envoy: { user: 'root' } }),
    workloads: [],
    host: { uid: 0, gid: 0, accounts },
  }).catch((e: unknown) => e);
  t.equal((root as MeshError).code, 'MESH_E_TPROXY_USER');
});
