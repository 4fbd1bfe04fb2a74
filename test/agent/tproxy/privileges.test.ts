/** Capability sets from /proc/<pid>/status, the CAP_NET_ADMIN check, setpriv's arguments, capture readiness. */
import t from 'tap';
import type { AgentConfig } from '../../../agent/config/schema.js';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import { setprivArgs } from '../../../agent/envoy/envoy-run-as.js';
import { settlePrivileges } from '../../../agent/run/envoy-privileges.js';
import { captureReady } from '../../../agent/tproxy/capture-readiness.js';
import {
  CAP_NET_ADMIN,
  hasCapability,
  iptablesCapPrefix,
  parseCapabilities,
  parseUid,
  requireCaptureCapability,
} from '../../../agent/tproxy/privileges.js';
import { createLogger } from '../../../lib/logger.js';

const status = (caps: { eff?: string; prm?: string; inh?: string; amb?: string }, uid = 0) =>
  [
    'Name:\tnode',
    `Uid:\t${uid}\t${uid}\t${uid}\t${uid}`,
    `Gid:\t${uid}\t${uid}\t${uid}\t${uid}`,
    `CapInh:\t${caps.inh ?? '0000000000000000'}`,
    `CapPrm:\t${caps.prm ?? '0000000000000000'}`,
    `CapEff:\t${caps.eff ?? '0000000000000000'}`,
    'CapBnd:\t000001ffffffffff',
    `CapAmb:\t${caps.amb ?? '0000000000000000'}`,
    '',
  ].join('\n');

const ROOT = status({ eff: '000001ffffffffff', prm: '000001ffffffffff' });
/** A non-root agent given CAP_NET_ADMIN as an ambient capability (the systemd unit). */
const AMBIENT = status({ eff: '0000000000001000', prm: '0000000000001000', inh: '0000000000001000', amb: '0000000000001000' }, 998);
const NONE = status({}, 65534);

t.test('parses the capability sets', async (t) => {
  const caps = parseCapabilities(AMBIENT);
  t.equal(caps.effective, 0x1000n);
  t.equal(caps.ambient, 0x1000n);
  t.equal(caps.bounding, 0x1ffffffffffn);
  t.ok(hasCapability(caps.effective, CAP_NET_ADMIN));
  t.notOk(hasCapability(parseCapabilities(NONE).effective, CAP_NET_ADMIN));
  t.equal(parseUid(AMBIENT), 998);
});

t.test('capture without CAP_NET_ADMIN fails with what to grant', async (t) => {
  requireCaptureCapability(ROOT);
  requireCaptureCapability(AMBIENT);
  t.throws(() => requireCaptureCapability(NONE), { code: 'MESH_E_TPROXY_PRIVILEGE', message: /AmbientCapabilities=CAP_NET_ADMIN.*setcap/ });
  // CAP_NET_ADMIN only in the bounding or permitted set is not enough.
  t.throws(() => requireCaptureCapability(status({ prm: '0000000000001000' }, 998)), { code: 'MESH_E_TPROXY_PRIVILEGE' });
});

t.test('iptables children get exactly CAP_NET_ADMIN from a non-root agent with more ambient capabilities', async (t) => {
  // The packaged unit: CAP_NET_ADMIN, CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN (bits 12, 7, 6, 5, 0).
  const unit = parseCapabilities(
    status({ eff: '00000000000010e1', prm: '00000000000010e1', inh: '00000000000010e1', amb: '00000000000010e1' }, 998),
  );
  t.same(iptablesCapPrefix(998, unit), ['setpriv', '--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--']);
  t.equal(iptablesCapPrefix(998, parseCapabilities(AMBIENT)), undefined, 'CAP_NET_ADMIN alone: nothing to drop');
  t.equal(iptablesCapPrefix(0, parseCapabilities(ROOT)), undefined, 'root: run directly');
  t.equal(iptablesCapPrefix(65534, parseCapabilities(NONE)), undefined, 'no capability: nothing to drop');
  const noNetAdmin = parseCapabilities(status({ amb: '0000000000000020', inh: '0000000000000020' }, 998));
  t.same(
    iptablesCapPrefix(998, noNetAdmin),
    ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', '--'],
    'without CAP_NET_ADMIN: drop all',
  );
});

t.test('setpriv switches to Envoy user and clears every capability set', async (t) => {
  const user = { uid: 15337, gid: 15337 };
  t.same(setprivArgs(user, { uid: 0, caps: parseCapabilities(ROOT) }), [
    '--reuid',
    '15337',
    '--regid',
    '15337',
    '--clear-groups',
    '--inh-caps=-all',
    '--ambient-caps=-all',
    '--bounding-set=-all',
  ]);
  t.same(
    setprivArgs(undefined, { uid: 998, caps: parseCapabilities(AMBIENT) }),
    ['--inh-caps=-all', '--ambient-caps=-all'],
    'the ambient CAP_NET_ADMIN is not inherited',
  );
  t.equal(setprivArgs(undefined, { uid: 65534, caps: parseCapabilities(NONE) }), undefined, 'nothing to drop: spawned as before');
  t.throws(() => setprivArgs(user, { uid: 998, caps: parseCapabilities(AMBIENT) }), { code: 'MESH_E_TPROXY_USER', message: /CAP_SETUID/ });
});

function config(input: Record<string, unknown>): AgentConfig {
  return { ...agentConfigSchema().parse(input), nodeName: 'n1', trustDomain: 'example.org' } as AgentConfig;
}
const log = createLogger({ sink: { write: () => {} } });
const accounts = { passwd: 'root:x:0:0::/root:/bin/bash\n', group: 'root:x:0:\n' };

t.test('settlePrivileges: the check first, then Envoy user and setpriv arguments', async (t) => {
  const sources = (text: string) => ({ procStatus: async () => text, accounts: async () => accounts });
  await t.rejects(settlePrivileges(config({ transparentProxy: { enabled: true } }), log, sources(NONE)), {
    code: 'MESH_E_TPROXY_PRIVILEGE',
  });
  const numeric = await settlePrivileges(config({ transparentProxy: { enabled: true }, envoy: { user: '15337' } }), log, sources(ROOT));
  t.same(numeric.runAs, { uid: 15337, gid: 15337 });
  t.same(numeric.setpriv?.slice(0, 5), ['--reuid', '15337', '--regid', '15337', '--clear-groups']);
  // Root, no mesh-envoy user: capture needs it; without capture Envoy runs as root, with no capabilities.
  await t.rejects(settlePrivileges(config({ transparentProxy: { enabled: true } }), log, sources(ROOT)), { code: 'MESH_E_TPROXY_USER' });
  const plain = await settlePrivileges(config({}), log, sources(ROOT));
  t.equal(plain.runAs, undefined);
  t.same(plain.setpriv, ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all']);
  const user = await settlePrivileges(config({}), log, sources(NONE));
  t.same(user, { agentUid: 65534 }, 'a plain user agent spawns Envoy as before');
});

t.test('capture readiness: an epoch serves and the capture listeners were accepted at some version', async (t) => {
  const acked = (...names: string[]) => new Map(names.map((n) => [n, 'v1']));
  const served = ['capture:outbound', 'capture:inbound', 'inbound:api'];
  t.ok(captureReady({ envoyState: 'running', servedListeners: served, ackedListeners: acked('capture:outbound', 'capture:inbound') }));
  t.ok(
    captureReady({ envoyState: 'hot-restarting', servedListeners: served, ackedListeners: acked('capture:outbound', 'capture:inbound') }),
  );
  t.notOk(
    captureReady({ envoyState: 'running', servedListeners: served, ackedListeners: acked('capture:outbound') }),
    'inbound not accepted yet',
  );
  t.notOk(captureReady({ envoyState: 'backoff', servedListeners: served, ackedListeners: acked('capture:outbound', 'capture:inbound') }));
  t.notOk(captureReady({ envoyState: 'running', servedListeners: undefined, ackedListeners: acked() }));
  t.ok(
    captureReady({ envoyState: 'running', servedListeners: ['inbound:api'], ackedListeners: acked('inbound:api') }),
    'no capture listeners: any',
  );
});
