/**
 * Transparent-proxy lifecycle across network namespaces, with the real
 * programs (test/support/tproxy-world.ts), for each backend (iptables-nft,
 * then iptables-legacy):
 * - foreign rules untouched: a user's own chains with rules in filter and nat,
 *   IPv4 and IPv6, planted on a before any agent runs, are byte-for-byte the
 *   same (counters normalized) after install then stop, and after install,
 *   kill -9 of the agent, restart, stop (an Envoy the killed agent left is
 *   reported and ended by its pid);
 * - failure policy open: Envoy killed (by its pid), traffic flows directly
 *   while it is down (polled, no timed assertion) and capture comes back with
 *   Envoy;
 * - failure policy closed: Envoy killed, traffic fails, and api never sees a
 *   request without web's SPIFFE ID.
 * Envoy restarts after restartBackoffInitial (4 s here), which leaves a window
 * to look at the host while it is down.
 */
import t from 'tap';
import { processAlive, processesWith } from '../support/child.js';
import { listNetns, privilegedSkipReason } from '../support/netns.js';
import { ourLines, plantForeignRules, snapshot } from '../support/tproxy-iptables.js';
import {
  APP_PORT,
  appRequests,
  type Backend,
  curlIn,
  echoIn,
  killPid,
  type MeshedHost,
  spiffeId,
  startTproxyWorld,
  type TproxyWorld,
  xfccUri,
} from '../support/tproxy-world.js';
import { waitFor } from '../support/wait.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const BACKENDS: Backend[] = ['nft', 'legacy'];
const WEB = spiffeId('web');
const SLOW_RESTART = { restartBackoffInitial: '4s', restartBackoffMax: '4s' };

async function captureState(m: MeshedHost, states: string[], what: string) {
  try {
    return await waitFor(
      async () => {
        const s = await m.status();
        return states.includes(s.transparentProxy?.state ?? '') ? s : undefined;
      },
      { timeoutMs: 60_000, what: `${what} on ${m.host.name}` },
    );
  } catch (err) {
    const s = await m.status().catch(() => undefined);
    throw new Error(
      `${(err as Error).message}\ncapture: ${JSON.stringify(s?.transparentProxy)}\n${m.agent()?.output().slice(-3000) ?? ''}`,
    );
  }
}

/** Envoy's pid from the agent's status, once Envoy runs. */
async function envoyPid(m: MeshedHost): Promise<number> {
  return waitFor(
    async () => {
      const pid = (await m.status()).envoy?.pid;
      return typeof pid === 'number' && processAlive(pid) ? pid : undefined;
    },
    { timeoutMs: 30_000, what: `Envoy running on ${m.host.name}` },
  );
}

/** web -> api by address through the mesh, once it works. */
async function meshWorks(w: TproxyWorld, what: string) {
  return waitFor(
    async () => {
      const r = await echoIn(w.a, `http://${w.b.address}:${APP_PORT}/${what}`);
      return r?.app === 'api' && xfccUri(r.xfcc) === WEB ? r : undefined;
    },
    { timeoutMs: 60_000, what: `web -> api through the mesh (${what})` },
  );
}

t.test('transparent-proxy lifecycle across network namespaces', { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const w = await startTproxyWorld({ prefix: 'mesh-tproxy-life-' });
  t.teardown(() => w.stop());
  const apiApp = w.apps.get('b');
  if (apiApp === undefined) throw new Error('no api app');

  for (const backend of BACKENDS) {
    await t.test(`backend ${backend}`, async (t) => {
      t.teardown(async () => {
        await w.web.stop();
        await w.api.stop();
      });

      await t.test('foreign rules untouched: install then stop; install, kill -9, restart, stop', async (t) => {
        await plantForeignRules(w.a, backend);
        const before = await snapshot(w.a, backend);
        t.same(ourLines(before), [], 'no rule of ours before');

        await w.web.start({ backend });
        await captureState(w.web, ['installed'], 'capture installed');
        const installed = await snapshot(w.a, backend);
        t.ok(ourLines(installed).length > 0, `installed ${ourLines(installed).length} lines of ours`);
        for (const [k, text] of Object.entries(before))
          for (const line of text.split('\n').filter((l) => l.includes('USER_')))
            t.ok(installed[k]?.includes(line), `${k}: the user's rule is still there while ours are: ${line}`);
        await w.web.stop();
        t.same(await snapshot(w.a, backend), before, 'after stop: filter and nat, IPv4 and IPv6, byte-for-byte as before');

        await w.web.start({ backend });
        await captureState(w.web, ['installed'], 'capture installed again');
        const leftEnvoys = await w.web.kill9();
        t.comment(`after kill -9 of the agent, Envoy processes left: ${JSON.stringify(leftEnvoys)}`);
        for (const pid of leftEnvoys) killPid(pid);
        await waitFor(async () => (leftEnvoys.every((p) => !processAlive(p)) ? true : undefined), { what: 'the left Envoy to end' });
        const stale = await snapshot(w.a, backend);
        t.same(ourLines(stale), ourLines(installed), 'the killed agent left its rules (capture held: fail closed)');

        await w.web.start({ backend });
        await captureState(w.web, ['installed'], 'capture installed after the crash');
        t.same(await snapshot(w.a, backend), installed, 'the restart replaced the stale rules: the same set, nothing twice');
        await w.web.stop();
        t.same(await snapshot(w.a, backend), before, 'after the crash, restart and stop: byte-for-byte as before');
      });

      await t.test('failure policy open: Envoy dead -> traffic flows directly; capture returns with Envoy', async (t) => {
        await w.api.start({ backend, failurePolicy: 'open' }, SLOW_RESTART);
        await w.web.start({ backend, failurePolicy: 'open' }, SLOW_RESTART);
        await captureState(w.api, ['installed'], 'capture installed');
        await captureState(w.web, ['installed'], 'capture installed');
        await meshWorks(w, 'open-before');
        t.equal((await curlIn(w.c, `http://${w.b.address}:${APP_PORT}/c-open-before`)).status, 0, 'strict: c is refused while Envoy runs');

        // b's Envoy dies: inbound capture is lifted, c reaches api directly.
        const bPid = await envoyPid(w.api);
        killPid(bPid);
        const lifted = await captureState(w.api, ['lifted'], 'capture lifted');
        t.ok((lifted.transparentProxy?.warning ?? '') !== '', `status warns: ${lifted.transparentProxy?.warning}`);
        const direct = await waitFor(
          async () => {
            const r = await echoIn(w.c, `http://${w.b.address}:${APP_PORT}/c-direct`);
            return r?.app === 'api' ? r : undefined;
          },
          { timeoutMs: 10_000, what: "c to reach b's app directly while b's Envoy is dead" },
        );
        t.equal(direct.xfcc, '', 'open: with Envoy dead, traffic flows directly (plaintext, by design of the policy)');
        await captureState(w.api, ['installed'], 'capture back with Envoy');
        t.not(await envoyPid(w.api), bPid, 'a new Envoy runs');
        await meshWorks(w, 'open-after-b');
        await waitFor(async () => ((await curlIn(w.c, `http://${w.b.address}:${APP_PORT}/c-open-after`)).status === 0 ? true : undefined), {
          timeoutMs: 10_000,
          what: 'c refused again',
        });
        t.pass('capture returned with Envoy: c refused again, web reaches api with mTLS');

        // a's Envoy dies: outbound capture is lifted, web reaches c directly.
        const aPid = await envoyPid(w.web);
        killPid(aPid);
        await captureState(w.web, ['lifted'], 'capture lifted');
        const out = await waitFor(
          async () => {
            const r = await echoIn(w.a, `http://${w.c.address}:${APP_PORT}/a-direct`);
            return r?.app === 'outsider' ? r : undefined;
          },
          { timeoutMs: 10_000, what: 'web to reach c directly while its Envoy is dead' },
        );
        t.equal(out.app, 'outsider', 'outbound flows directly with Envoy dead');
        await captureState(w.web, ['installed'], 'capture back with Envoy');
        await meshWorks(w, 'open-after-a');
        t.pass('capture returned on a: web reaches api with mTLS');
        await w.web.stop();
        await w.api.stop();
      });

      await t.test('failure policy closed: Envoy dead -> traffic fails, never plaintext', async (t) => {
        await w.api.start({ backend, failurePolicy: 'closed' }, SLOW_RESTART);
        await w.web.start({ backend, failurePolicy: 'closed' }, SLOW_RESTART);
        await captureState(w.api, ['installed'], 'capture installed');
        await captureState(w.web, ['installed'], 'capture installed');
        await meshWorks(w, 'closed-before');
        const mark = appRequests(apiApp).length;

        const bPid = await envoyPid(w.api);
        killPid(bPid);
        await waitFor(async () => (processAlive(bPid) ? undefined : true), { what: "b's Envoy to be gone" });
        const fromA = await curlIn(w.a, `http://${w.b.address}:${APP_PORT}/closed-a`);
        const fromC = await curlIn(w.c, `http://${w.b.address}:${APP_PORT}/closed-c`);
        t.not(fromA.status, 200, `web -> api fails while b's Envoy is dead (HTTP ${fromA.status})`);
        t.equal(fromC.status, 0, 'c gets nothing from b');
        t.equal((await w.api.status()).transparentProxy?.state, 'installed', 'closed: capture stays installed');
        await envoyPid(w.api);
        await meshWorks(w, 'closed-after-b');

        const aPid = await envoyPid(w.web);
        killPid(aPid);
        await waitFor(async () => (processAlive(aPid) ? undefined : true), { what: "a's Envoy to be gone" });
        const deadA = await curlIn(w.a, `http://${w.b.address}:${APP_PORT}/closed-dead-a`);
        t.equal(deadA.status, 0, `web -> api fails while a's Envoy is dead (curl exit ${deadA.curlExit})`);
        const outC = await curlIn(w.a, `http://${w.c.address}:${APP_PORT}/closed-to-c`);
        t.equal(outC.status, 0, 'and nothing leaves a directly');
        await envoyPid(w.web);
        await meshWorks(w, 'closed-after-a');

        const seen = appRequests(apiApp).slice(mark);
        t.ok(seen.length > 0, `api saw ${seen.length} requests meanwhile`);
        t.same(
          seen.filter((r) => xfccUri(r.xfcc) !== WEB).map((r) => r.path),
          [],
          "api never saw a request without web's SPIFFE ID (never plaintext)",
        );
        const atC = appRequests(w.apps.get('c') as NonNullable<ReturnType<typeof w.apps.get>>).filter((r) => r.path === '/closed-to-c');
        t.same(atC, [], 'c never saw the request a made while its Envoy was dead');
      });
    });
  }

  await w.stop();
  t.same(processesWith(w.base), [], 'no process of the test (Envoy included) is left');
  const left = (await listNetns()).filter((ns) => ns.startsWith(w.net.id));
  t.same(left, [], 'no namespace of the test remains');
});
