/** Doctor's live checks: Consul (reachable, ACL allows our registrations), Envoy's admin API and pending NACKs, capture drift. */
import { toMeshError } from '../../lib/errors.js';
import type { StatusDocument } from '../status/status.js';
import { parseUid } from '../tproxy/privileges.js';
import { type Check, type DoctorContext, fail, pass, warn } from './doctor-types.js';

const AGENT_DOWN_FIX = 'start the agent (systemctl start mesh-agent), then run doctor again';

interface Authorization {
  Resource: string;
  Segment: string;
  Access: string;
  Allow: boolean;
}

/** What the agent writes to Consul: each workload's service, and in catalog mode the node too. */
export function registrationRights(ctx: Pick<DoctorContext, 'config' | 'workloads'>): Array<Omit<Authorization, 'Allow'>> {
  const out = ctx.workloads.map((w) => ({ Resource: 'service', Segment: w.name, Access: 'write' }));
  if (ctx.config.consul.mode === 'catalog') out.push({ Resource: 'node', Segment: ctx.config.nodeName, Access: 'write' });
  return out;
}

const ruleOf = (a: Omit<Authorization, 'Allow'>) => `${a.Resource} "${a.Segment}" { policy = "${a.Access}" }`;

export const consulCheck: Check = {
  id: 'consul',
  title: "Consul reachable and its ACL allows the agent's registrations",
  async run(ctx) {
    const { address, token } = ctx.config.consul;
    const consul = (method: 'GET' | 'POST', apiPath: string, body?: unknown) =>
      ctx.probes.consul.request(address, token, method, apiPath, body);
    let leader: string;
    try {
      const res = await consul('GET', '/v1/status/leader');
      leader = res.status === 200 ? (JSON.parse(res.body) as string) : '';
      if (res.status !== 200)
        return fail(`Consul at ${address} answered HTTP ${res.status}: ${res.body.trim().slice(0, 160)}`, 'check consul.address');
    } catch (err) {
      return fail(
        `Consul at ${address} does not answer (${toMeshError(err).message})`,
        'start the local Consul agent (systemctl start consul), or fix consul.address',
      );
    }
    if (leader === '')
      return fail(`Consul at ${address} has no leader`, 'check the Consul servers (consul members; consul operator raft list-peers)');
    const wanted = registrationRights(ctx);
    if (wanted.length === 0) return pass(`Consul at ${address} answers (leader ${leader}); no workload files, nothing to register yet`);
    // Read-only: Consul evaluates the token against each right and changes nothing (the API its UI uses).
    const res = await consul('POST', '/v1/internal/acl/authorize', wanted).catch((err: unknown) => ({
      status: 0,
      body: toMeshError(err).message,
    }));
    if (res.status === 401 && /ACL support disabled/i.test(res.body))
      return pass(`Consul at ${address} answers (leader ${leader}); its ACLs are off, so any registration is allowed`);
    if (res.status === 403 && /ACL not found/i.test(res.body))
      return fail(`Consul at ${address} does not know the agent's token`, 'set consul.token or consul.tokenFile to a valid ACL token');
    if (res.status !== 200)
      return warn(
        `Consul at ${address} answers (leader ${leader}), but the ACL could not be checked (HTTP ${res.status}: ${res.body.trim().slice(0, 120)})`,
        'check by hand: consul acl token read -self',
      );
    const answers = JSON.parse(res.body) as Authorization[];
    const denied = answers.filter((a) => a.Allow !== true);
    if (denied.length > 0)
      return fail(
        `the agent's Consul token may not register: ${denied.map((a) => `${a.Resource}:${a.Access} on ${a.Segment}`).join(', ')}`,
        `give the token a policy with ${denied.map(ruleOf).join(' ')} (consul acl policy create, consul acl token update)`,
        { denied: denied.map((a) => ({ resource: a.Resource, segment: a.Segment, access: a.Access })) },
      );
    return pass(
      `Consul at ${address} answers (leader ${leader}); the token may write ${wanted.map((a) => `${a.Resource} ${a.Segment}`).join(', ')}`,
    );
  },
};

/** NACKs Envoy sent after its latest ACK of that type: the configuration the agent wants is not running. Pure. */
export function pendingNacks(doc: StatusDocument): Array<{ type: string; version: string; detail: string }> {
  return (doc.xds?.types ?? []).flatMap((t) =>
    t.lastNack !== undefined && (t.ackedAt === undefined || Date.parse(t.lastNack.at) >= Date.parse(t.ackedAt))
      ? [{ type: t.type, version: t.lastNack.version, detail: t.lastNack.detail.replace(/\s+/g, ' ') }]
      : [],
  );
}

export const envoyAdminCheck: Check = {
  id: 'envoy-admin',
  title: 'Envoy admin API answers and no NACK is pending',
  async run(ctx) {
    if (!ctx.config.dataPlane.enabled) return pass('dataPlane.enabled is false: the agent runs no Envoy');
    if (ctx.agent === undefined) return warn(`not checked: nothing answers at status.listen ${ctx.config.status.listen}`, AGENT_DOWN_FIX);
    const port = ctx.config.envoy.adminPort;
    let state: string;
    try {
      const res = await ctx.probes.agent.envoyAdmin(port, '/server_info');
      state = res.status === 200 ? String((JSON.parse(res.body) as { state?: unknown }).state) : `HTTP ${res.status}`;
    } catch (err) {
      return fail(
        `Envoy's admin API on 127.0.0.1:${port} does not answer (${toMeshError(err).message}); the agent says Envoy is ${ctx.agent.status.envoy?.state ?? 'unknown'}`,
        'see why Envoy stopped: journalctl -u mesh-agent (the supervisor logs its exits)',
      );
    }
    if (state !== 'LIVE')
      return warn(`Envoy's admin API answers, state ${state}`, 'wait for Envoy to finish starting; see mesh-agent status');
    const nacks = pendingNacks(ctx.agent.status);
    if (nacks.length > 0)
      return fail(
        `Envoy rejected ${nacks.map((n) => `${n.type} version ${n.version}: ${n.detail}`).join('; ')}`,
        'Envoy keeps the previous configuration; fix the workload file or policy the detail names (mesh-agent status shows it)',
        { nacks },
      );
    const acked = (ctx.agent.status.xds?.types ?? []).filter((t) => t.ackedVersion !== undefined).length;
    return pass(`Envoy LIVE on admin port ${port}; ${acked} xDS types acked, no NACK pending`);
  },
};

export const captureDriftCheck: Check = {
  id: 'capture-drift',
  title: 'capture rules match what the agent installs',
  async run(ctx) {
    const tp = ctx.config.transparentProxy;
    if (!tp.enabled) return pass('transparentProxy.enabled is false: no capture rules');
    if (ctx.agent === undefined) return warn('not checked: the agent is not running (it installs the rules at start)', AGENT_DOWN_FIX);
    try {
      const backend = await ctx.probes.capture.backend(tp.backend);
      const status = ctx.agent.pid === undefined ? undefined : await ctx.probes.host.procStatus(ctx.agent.pid);
      const uid = status === undefined ? undefined : parseUid(status);
      const r = await ctx.probes.capture.inspect(backend, uid);
      if (r.missing.length === 0 && r.unexpected.length === 0)
        return pass(`${r.installed} rules installed as expected (backend ${backend})`);
      return fail(
        `capture rules drifted: ${r.missing.length} missing, ${r.unexpected.length} unexpected (backend ${backend})`,
        'the agent repairs drift every transparentProxy.checkInterval; if it stays, see mesh-agent tproxy status and restart the agent',
        { missing: r.missing, unexpected: r.unexpected },
      );
    } catch (err) {
      const e = toMeshError(err);
      return fail(`cannot compare the capture rules: ${e.code}: ${e.message}`, 'run mesh-agent doctor as root; see the iptables check');
    }
  },
};
