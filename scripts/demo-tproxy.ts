/**
 * `npm run demo -- --tproxy [--check]` (as root): the transparent proxy. Four
 * network namespaces on one veth bridge (the world of the tproxy tests,
 * test/support/tproxy-world.ts): infra (Consul, the control plane), a (web),
 * b (api), c (outside the mesh). a and b each run `mesh-agent run` with
 * transparentProxy on and Envoy as uid 15337. web calls api by address,
 * `http://<b>:8080/`, with no upstream in its workload file: a's rules send
 * the connection to Envoy, which goes mTLS to api's mesh port; api answers
 * with the SPIFFE ID it saw. Then c, outside the mesh, tries b's app port in
 * plaintext and is refused. Every rule lives inside the demo's namespaces;
 * the host's own iptables are never touched. Ctrl-C (or --check) stops the
 * agents (which remove their rules) and removes the namespaces.
 */

import { waitFor } from '../lib/wait.js';
import { APP_PORT, curlIn, echoIn, spiffeId, startTproxyWorld, type TproxyWorld, xfccUri } from '../test/support/tproxy-world.js';
import { untilStopSignal } from './stop-signal.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

export async function runTproxyDemo(check: boolean): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'demo --tproxy: must run as root: it creates network namespaces (ip netns) and installs iptables rules inside them\n' +
        "(the host's own iptables are never touched). Run it as root, e.g. `sudo npm run demo -- --tproxy`.\n",
    );
    return 2;
  }
  say('creating 4 network namespaces on a veth bridge (infra, a, b, c)...');
  const w = await startTproxyWorld({ prefix: 'mesh-demo-tproxy-' });
  try {
    await w.useConsulDns(w.a);
    return await demo(w, check);
  } finally {
    await w.stop();
    say('stopped: agents removed their rules, namespaces removed');
  }
}

async function demo(w: TproxyWorld, check: boolean): Promise<number> {
  const ns = (h: { netns: string }) => `ip netns exec ${h.netns}`;
  say(`started  infra ${w.infra.address}: Consul dev agent (${w.consulAddr}, DNS on :53) and mesh-controlplane`);
  say(`started  a ${w.a.address} (${w.a.netns}): app web on :${APP_PORT}, no upstreams in its workload file`);
  say(`started  b ${w.b.address} (${w.b.netns}): app api on :${APP_PORT} (every address)`);
  say(`started  c ${w.c.address} (${w.c.netns}): outside the mesh, no agent`);
  await w.api.start();
  await w.web.start();
  for (const m of [w.api, w.web]) {
    const s = await waitFor(
      async () => {
        const doc = await m.status();
        return doc.transparentProxy?.state === 'installed' ? doc : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: `capture installed on ${m.host.name}` },
    );
    const c = s.transparentProxy;
    say(
      `started  mesh-agent on ${m.host.name} with transparentProxy: ${c?.state}, backend ${c?.backend}, ${c?.rules?.installed} rules; Envoy as uid 15337`,
    );
  }

  say('');
  say(`$ ${ns(w.a)} curl http://${w.b.address}:${APP_PORT}/`);
  const answer = await waitFor(
    async () => {
      const r = await echoIn(w.a, `http://${w.b.address}:${APP_PORT}/`);
      return r?.app === 'api' ? r : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: 'web to reach api by address' },
  ).catch((err: Error) => err);
  const peer = answer instanceof Error ? undefined : xfccUri(answer.xfcc);
  const mtlsOk = peer === spiffeId('web');
  say(
    mtlsOk
      ? `answer   api saw peer ${peer} (captured by a's rules, mTLS between the Envoys)`
      : `FAILED   ${String(answer instanceof Error ? answer.message : JSON.stringify(answer))}`,
  );

  say(`$ ${ns(w.a)} curl http://api.service.consul:${APP_PORT}/   (a's resolv.conf: Consul's DNS on infra)`);
  const byName = await echoIn(w.a, `http://api.service.consul:${APP_PORT}/`);
  const dnsOk = byName !== undefined && xfccUri(byName.xfcc) === spiffeId('web');
  say(
    dnsOk
      ? `answer   api saw peer ${xfccUri(byName?.xfcc ?? '')} (the name resolved to b's address, then captured)`
      : 'FAILED   no answer by name',
  );

  say(`$ ${ns(w.c)} curl http://${w.b.address}:${APP_PORT}/`);
  const plain = await curlIn(w.c, `http://${w.b.address}:${APP_PORT}/`);
  const refused = plain.status === 0;
  say(
    refused
      ? `refused  c (outside the mesh) gets no plaintext answer from api (curl exit ${plain.curlExit})`
      : `FAILED   c got HTTP ${plain.status}`,
  );

  say('');
  say(`$ ${ns(w.a)} mesh-agent tproxy status --config ${w.web.configFile}`);
  const status = await w.web.tproxy(['status']);
  process.stdout.write(status.stdout);

  const ok = mtlsOk && dnsOk && refused && status.code === 0;
  if (check) {
    say(ok ? 'demo check passed' : 'demo check FAILED');
    if (!ok)
      for (const m of [w.web, w.api])
        process.stderr.write(`--- mesh-agent on ${m.host.name} ---\n${m.agent()?.output().slice(-3000) ?? ''}\n`);
    return ok ? 0 : 1;
  }
  say('');
  say('The mesh is running. Try:');
  say(`  ${ns(w.a)} curl -s http://${w.b.address}:${APP_PORT}/`);
  say(`  ${ns(w.a)} curl -s http://api.service.consul:${APP_PORT}/`);
  say(`  ${ns(w.a)} iptables-save -t nat`);
  say(`  ${ns(w.a)} node dist/agent/main.js tproxy status --config ${w.web.configFile}`);
  say('Press Ctrl-C to stop everything and clean up.');
  await untilStopSignal();
  say('\nstopping...');
  return 0;
}
