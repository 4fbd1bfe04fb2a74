/** Doctor's checks of the identity: the control plane (reachable, verified), clock skew, the node SVID. */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { clockSkew } from '../../lib/server-time.js';
import { fromPemAll } from '../../lib/x509/pem.js';
import { identityDir } from '../identity/identity-store.js';
import { type Check, type DoctorContext, enrollFix, fail, humanDuration, pass, warn } from './doctor-types.js';
import type { ControlPlaneTarget } from './probes.js';

const REJOIN = 'create a join token (meshctl token create NODE) and run mesh-agent join --force';

/** Where the control plane is and what vouches for it: the config's address, else the one stored at join, and the joined bundle. */
async function target(ctx: DoctorContext): Promise<ControlPlaneTarget | string> {
  const dir = identityDir(ctx.config.dataDir);
  const read = (name: string) => ctx.probes.host.readText(path.join(dir, name));
  const meta = (await read('node.json')) ?? '{}';
  let joinedAddress: string | undefined;
  try {
    joinedAddress = (JSON.parse(meta) as { controlPlane?: string }).controlPlane;
  } catch {
    return `${path.join(dir, 'node.json')} is damaged`;
  }
  const address = ctx.config.controlPlane.address ?? joinedAddress;
  const bundlePem = (await read('bundle.pem')) ?? (await ctx.probes.host.readText(ctx.config.controlPlane.caBundle));
  if (address === undefined || bundlePem === undefined || ctx.config.trustDomain === '')
    return `this host has not joined (nothing in ${dir})`;
  const chainPem = await read('node.pem');
  // Without the key (doctor run as another user) the time call goes unauthenticated: its refusal still carries the time.
  const keyPem = await read('node.key').catch(() => undefined);
  return {
    address,
    trustDomain: ctx.config.trustDomain,
    bundlePem,
    ...(chainPem !== undefined && keyPem !== undefined ? { node: { chainPem, keyPem } } : {}),
  };
}

export const controlPlaneCheck: Check = {
  id: 'controlplane',
  title: 'control plane reachable and its identity verifies',
  async run(ctx) {
    const t = await target(ctx);
    if (typeof t === 'string')
      return fail(t, enrollFix(ctx.config, 'run mesh-agent join --controlplane HOST:PORT --token-file FILE --ca-bundle FILE'));
    const result = await ctx.probes.controlPlane.handshake(t);
    if (result.ok)
      return pass(`${t.address} answers as ${result.spiffeId} (chain verified against the joined bundle)`, { address: t.address });
    if (result.kind === 'unreachable')
      return fail(
        `the control plane at ${t.address} is unreachable (${result.reason})`,
        'start it (systemctl start mesh-controlplane on its host), or fix controlPlane.address / the firewall',
        { address: t.address },
      );
    return fail(
      `the server at ${t.address} is not the control plane of ${t.trustDomain}: ${result.reason}`,
      'point controlPlane.address at the control plane; if the mesh CA was replaced, join again (mesh-agent join --force)',
      { address: t.address },
    );
  },
};

/** Beyond this the agent's view of certificate validity differs from the control plane's enough to matter. */
export const SKEW_WARN_MS = 2_000;
export const SKEW_FAIL_MS = 60_000;

export const clockSkewCheck: Check = {
  id: 'clock-skew',
  title: 'clock skew against the control plane',
  async run(ctx) {
    const t = await target(ctx);
    if (typeof t === 'string') return warn(`not measured: ${t}`, enrollFix(ctx.config, 'run mesh-agent join'));
    const time = await ctx.probes.controlPlane.serverTime(t);
    if (time === undefined)
      return warn(
        `not measured: no answer with the server's time from ${t.address}`,
        'bring the control plane up (see the controlplane check); it must be as new as this agent',
      );
    const { skewMs, uncertaintyMs } = clockSkew(time);
    const ahead = skewMs > 0 ? 'ahead of' : 'behind';
    const detail = `this host's clock is ${Math.abs(skewMs)} ms ${ahead} the control plane's (±${uncertaintyMs} ms, from its response header)`;
    const data = { skewMs, uncertaintyMs };
    const fix = 'synchronise the clocks (timedatectl set-ntp true; chronyc tracking)';
    if (Math.abs(skewMs) - uncertaintyMs > SKEW_FAIL_MS) return fail(detail, fix, data);
    if (Math.abs(skewMs) - uncertaintyMs > SKEW_WARN_MS) return warn(detail, fix, data);
    return pass(detail, data);
  },
};

/** Whether a node SVID chain is valid now and chains to a root of the bundle; how long it has left. Pure. */
export function nodeSvidState(chainPem: string, bundlePem: string, now: number) {
  let chain: X509Certificate[];
  let roots: X509Certificate[];
  try {
    chain = fromPemAll(chainPem).map((der) => new X509Certificate(der));
    roots = fromPemAll(bundlePem).map((der) => new X509Certificate(der));
  } catch (err) {
    return { ok: false as const, reason: `cannot read the certificates: ${(err as Error).message}` };
  }
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false as const, reason: 'the node SVID file holds no certificate' };
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  const spiffeId = (leaf.subjectAltName ?? '').replace(/^URI:/, '');
  if (notAfter <= now)
    return { ok: false as const, expired: true, notAfter, spiffeId, reason: `it expired at ${new Date(notAfter).toISOString()}` };
  if (notBefore > now)
    return { ok: false as const, reason: `it is not valid before ${new Date(notBefore).toISOString()} (check the clock)` };
  const top = chain[chain.length - 1] as X509Certificate;
  const signed = (c: X509Certificate, p: X509Certificate) => c.checkIssued(p) && c.verify(p.publicKey);
  const linked = chain.every((c, i) => i === chain.length - 1 || signed(c, chain[i + 1] as X509Certificate));
  if (!linked || !roots.some((r) => signed(top, r)))
    return { ok: false as const, reason: 'it does not chain to a root of the joined bundle' };
  return { ok: true as const, spiffeId, notBefore, notAfter };
}

export const nodeSvidCheck: Check = {
  id: 'node-svid',
  title: 'node SVID valid, and how long until it expires',
  async run(ctx) {
    const dir = identityDir(ctx.config.dataDir);
    const chainPem = await ctx.probes.host.readText(path.join(dir, 'node.pem'));
    const bundlePem = await ctx.probes.host.readText(path.join(dir, 'bundle.pem'));
    if (chainPem === undefined || bundlePem === undefined)
      return fail(`no node SVID in ${dir}`, enrollFix(ctx.config, 'run mesh-agent join'));
    const now = ctx.now();
    const s = nodeSvidState(chainPem, bundlePem, now);
    if (!s.ok) {
      const data =
        s.notAfter === undefined
          ? undefined
          : { notAfter: new Date(s.notAfter).toISOString(), secondsLeft: Math.floor((s.notAfter - now) / 1000) };
      // An expired node SVID cannot authenticate a renewal: only a new join helps.
      return fail(
        `the node SVID ${path.join(dir, 'node.pem')} is not valid: ${s.reason}`,
        enrollFix(ctx.config, s.expired ? REJOIN : `mesh-agent renew, or ${REJOIN}`),
        data,
      );
    }
    const left = s.notAfter - now;
    const data = { spiffeId: s.spiffeId, notAfter: new Date(s.notAfter).toISOString(), secondsLeft: Math.floor(left / 1000) };
    const detail = `${s.spiffeId} expires in ${humanDuration(left)} (${data.notAfter})`;
    // The agent renews at about half its life; under a quarter left, renewal is failing.
    if (left < (s.notAfter - s.notBefore) / 4)
      return warn(`${detail}; renewal is overdue`, 'check the controlplane check and the agent log; mesh-agent renew renews now', data);
    return pass(detail, data);
  },
};
