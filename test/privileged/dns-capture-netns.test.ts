/**
 * DNS capture in a network namespace, with the real Consul: the namespace's
 * resolv.conf (/etc/netns/<ns>/resolv.conf, bind-mounted by `ip netns exec`)
 * names a fake resolver running in the namespace, which knows one outside
 * name. A foreign chain and rule are in its nat table first. For each
 * iptables backend (nft, legacy):
 * - before capture, getent resolves the outside name and not api.service.consul;
 * - with only the DNS capture rules of buildRuleSet installed and the DNS
 *   proxy running, api.service.consul resolves through Consul, and the
 *   outside name still resolves, through the proxy (the resolver sees it from
 *   the proxy's exempt source port), to the same address;
 * - after the rules are removed, resolution is exactly as before and the nat
 *   table equals its saved state (counters normalized).
 * resolv.conf is never written by the proxy. With a local stub resolver in
 * resolv.conf instead (a forwarder on 127.0.0.53, running as its own uid, as
 * systemd-resolved does), capture with that uid exempt resolves both kinds of
 * names too. Every process is stopped by its pid, and the namespaces and
 * /etc/netns/<ns> are removed.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { transparentProxySchema } from '../../agent/config/schema.js';
import { buildRuleSet } from '../../agent/tproxy/build.js';
import { normalizeSave, parseSave, renderInstall, renderRemoval } from '../../agent/tproxy/render.js';
import { dnsUpstreamSourcePort } from '../../agent/tproxy/rules.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childKeeper, type ManagedChild } from '../support/child.js';
import { consulDevConfig } from '../support/consul.js';
import { createNetwork, privilegedSkipReason, type TestHost } from '../support/netns.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const CONSUL_PORTS = { http: 8500, grpc: 8502, serfLan: 8301, serfWan: 8302, server: 8300 };
const CONSUL_DNS = 8600;
const DNS_PORT = 15053;
const OUTSIDE = 'files.example.net';
const OUTSIDE_ADDRESS = '192.0.2.53';
const API_ADDRESS = '10.77.0.99';
const FOREIGN = [
  '*nat',
  ':USER_DNS_AUDIT - [0:0]',
  '-A USER_DNS_AUDIT -p udp -m udp --dport 5353 -j RETURN',
  '-A OUTPUT -p udp -m udp --dport 5353 -j USER_DNS_AUDIT',
  'COMMIT',
  '',
].join('\n');

const dist = (...parts: string[]) => path.join(repoRoot(), 'dist', ...parts);

async function checked(host: TestHost, command: string, args: string[], input?: string): Promise<string> {
  const r = await host.exec(command, args, { timeoutMs: 30_000, ...(input === undefined ? {} : { input }) });
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} in ${host.name} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `getent ahostsv4 NAME` in the namespace: glibc's resolver, reading the namespace's resolv.conf. */
async function resolve(host: TestHost, name: string): Promise<{ code: number | null; stdout: string }> {
  const r = await host.exec('getent', ['ahostsv4', name], { timeoutMs: 30_000 });
  return { code: r.code, stdout: r.stdout };
}

const STUB_UID = 65534;

interface World {
  host: TestHost;
  resolver: ManagedChild;
  etcNetns: string;
  keep: (c: ManagedChild) => ManagedChild;
}

/**
 * One namespace host with: the fake resolver on its address (port 53), which
 * knows OUTSIDE; a real Consul on its address with api registered; the given
 * resolv.conf; a foreign chain and rule in both backends' nat tables.
 */
async function namespaceWorld(t: Test, resolvConf: (host: TestHost) => string): Promise<World> {
  const { consul } = await tools();
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-dns-capture-'));
  const net = await createNetwork(1, { subnet: '10.77.0' });
  const host = net.hosts[0] as TestHost;
  const etcNetns = path.join('/etc/netns', host.netns);
  const { keep, stopAll } = childKeeper();
  t.teardown(async () => {
    await stopAll();
    await net.remove().catch(() => undefined);
    await rm(etcNetns, { recursive: true, force: true });
    await rm(base, { recursive: true, force: true });
  });
  await mkdir(etcNetns, { recursive: true });
  await writeFile(path.join(etcNetns, 'resolv.conf'), resolvConf(host));

  const resolverArgs = [dist('test', 'support', 'dns-resolver-main.js'), host.address, '53', `${OUTSIDE}=${OUTSIDE_ADDRESS}`];
  const resolver = keep(host.spawn(process.execPath, resolverArgs));
  await waitFor(async () => (resolver.output().includes('listening') ? true : undefined), { what: 'the fake resolver in the namespace' });

  const consulConfig = path.join(base, 'consul.json');
  const config = consulDevConfig({
    nodeName: 'dns-consul',
    dataDir: path.join(base, 'consul'),
    address: host.address,
    ports: CONSUL_PORTS,
  });
  await writeFile(consulConfig, JSON.stringify({ ...config, ports: { ...(config.ports as object), dns: CONSUL_DNS } }));
  const consulChild = keep(host.spawn(consul.path, ['agent', '-dev', `-config-file=${consulConfig}`]));
  const consulHttp = `http://${host.address}:${CONSUL_PORTS.http}`;
  const curl = (args: string[], input?: string) => checked(host, 'curl', ['-s', '-m', '5', ...args], input);
  await waitFor(
    async () => {
      if (consulChild.exited()) throw new Error(`consul exited:\n${consulChild.output().slice(-2000)}`);
      const leader = (await curl([`${consulHttp}/v1/status/leader`])).trim();
      return leader !== '""' && leader !== '' ? true : undefined;
    },
    { timeoutMs: 60_000, what: 'consul in the namespace to elect a leader' },
  );
  const service = JSON.stringify({ ID: 'api-1', Name: 'api', Address: API_ADDRESS, Port: 8080 });
  await curl(['-f', '-X', 'PUT', '--data-binary', '@-', `${consulHttp}/v1/agent/service/register`], service);
  await waitFor(async () => ((await curl([`${consulHttp}/v1/catalog/service/api`])).includes(API_ADDRESS) ? true : undefined), {
    what: 'api in the catalog',
  });

  await checked(host, 'iptables-nft-restore', ['--noflush'], FOREIGN);
  await checked(host, 'iptables-legacy-restore', ['--noflush'], FOREIGN);
  return { host, resolver, etcNetns, keep };
}

/** Starts the DNS proxy in the namespace (it reads the namespace's resolv.conf). */
async function startProxy(w: World): Promise<ManagedChild> {
  const args = [dist('test', 'support', 'dns-proxy-main.js'), String(DNS_PORT), `${w.host.address}:${CONSUL_DNS}`, 'consul'];
  const proxy = w.keep(w.host.spawn(process.execPath, args));
  await waitFor(async () => (proxy.output().includes('listening') ? true : undefined), { what: 'the DNS proxy in the namespace' });
  return proxy;
}

/** Only the DNS capture rules of buildRuleSet (inbound and outbound TCP capture off). */
function dnsRuleSet(excludeUIDs: number[] = [], dnsServers?: string[]) {
  const tp = transparentProxySchema().parse({
    enabled: true,
    dns: { capture: true, port: DNS_PORT },
    inbound: { enabled: false },
    outbound: { enabled: false, excludeUIDs },
  });
  const facts = {
    envoyUid: 995,
    envoyGid: 995,
    agentUid: 0,
    inboundPorts: [],
    excludeAddresses: [],
    excludeUids: [],
    ipv6: false,
    ...(dnsServers === undefined ? {} : { dnsServers }),
  };
  return buildRuleSet(tp, facts);
}

const saveNat = (host: TestHost, backend: string) => checked(host, `iptables-${backend}-save`, ['-t', 'nat']);

async function install(host: TestHost, backend: string, set: ReturnType<typeof dnsRuleSet>): Promise<void> {
  const input = renderInstall(set, 'ipv4', 'nat', parseSave(await saveNat(host, backend)).get('nat'));
  await checked(host, `iptables-${backend}-restore`, ['--noflush'], input);
}

async function remove(host: TestHost, backend: string): Promise<void> {
  const input = renderRemoval(parseSave(await saveNat(host, backend)).get('nat'));
  await checked(host, `iptables-${backend}-restore`, ['--noflush'], input);
}

t.test(
  'DNS capture resolves Consul names and keeps the host resolver, and removal restores both',
  { skip: skip ?? false, timeout: 300_000 },
  async (t) => {
    const resolvConf = (h: TestHost) => `nameserver ${h.address}\n`;
    const w = await namespaceWorld(t, resolvConf);
    const { host, resolver, etcNetns } = w;
    const before = { outside: await resolve(host, OUTSIDE), api: await resolve(host, 'api.service.consul') };
    t.equal(before.outside.code, 0, 'without capture the outside name resolves through the host resolver');
    t.match(before.outside.stdout, OUTSIDE_ADDRESS);
    t.equal(before.api.code, 2, 'without capture api.service.consul is not found (the host resolver does not know it)');

    const proxy = await startProxy(w);
    t.match(proxy.output(), `"upstreams":["${host.address}:53"]`, "the proxy's upstream is the namespace's resolv.conf nameserver");
    const set = dnsRuleSet();
    t.ok(
      set.rules.length > 0 && set.rules.every((r) => r.table === 'nat' && (r.chain === 'MESH_DNS' || r.chain === 'OUTPUT')),
      'only the DNS capture rules',
    );
    const queries = (name: string) =>
      resolver
        .output()
        .split('\n')
        .filter((line) => line.startsWith(`query ${name} `));

    for (const backend of ['nft', 'legacy'] as const) {
      await t.test(`iptables-${backend}`, async (t) => {
        const saved = await saveNat(host, backend);
        t.match(saved, '-A OUTPUT -p udp -m udp --dport 5353 -j USER_DNS_AUDIT', 'a foreign rule is there first');
        await install(host, backend, set);
        const installed = await saveNat(host, backend);
        t.match(installed, /-A OUTPUT .*-j MESH_DNS/, 'the DNS capture jump is installed');
        t.match(installed, `--sport ${dnsUpstreamSourcePort(DNS_PORT)}`, "the proxy's upstream source port is exempt");

        const queriesBefore = queries(OUTSIDE).length;
        const apiQueriesBefore = queries('api.service.consul').length;
        const api = await resolve(host, 'api.service.consul');
        t.equal(api.code, 0, 'with capture api.service.consul resolves');
        t.match(api.stdout, new RegExp(`^${API_ADDRESS.replaceAll('.', '\\.')}\\s`, 'm'), "through Consul, to the service's address");
        const overTcp = await host.exec('env', ['RES_OPTIONS=use-vc', 'getent', 'ahostsv4', 'api.service.consul'], { timeoutMs: 30_000 });
        t.match(overTcp, { code: 0, stdout: API_ADDRESS }, 'over TCP too (glibc with use-vc): captured and answered by the proxy');
        t.same(await resolve(host, OUTSIDE), before.outside, 'the outside name resolves exactly as without capture');
        const viaProxy = queries(OUTSIDE).slice(queriesBefore);
        t.ok(viaProxy.length > 0, 'the host resolver got the query');
        t.same(
          [...new Set(viaProxy.map((line) => line.split(' ')[2]))],
          [String(dnsUpstreamSourcePort(DNS_PORT))],
          "every query it got came from the DNS proxy's exempt source port: captured, then forwarded",
        );
        t.equal(queries('api.service.consul').length, apiQueriesBefore, 'under capture the host resolver never saw the Consul name');

        await remove(host, backend);
        t.equal(
          normalizeSave(await saveNat(host, backend)),
          normalizeSave(saved),
          'the nat table equals its saved state, foreign rules included',
        );
        t.same(await resolve(host, OUTSIDE), before.outside, 'after removal the outside name resolves as before');
        t.same(await resolve(host, 'api.service.consul'), before.api, 'after removal api.service.consul is not found, as before');
      });
    }

    t.equal(await readFile(path.join(etcNetns, 'resolv.conf'), 'utf8'), resolvConf(host), 'resolv.conf was never changed');
    await proxy.stop();
    const statsLine = proxy
      .output()
      .split('\n')
      .find((line) => line.startsWith('stats '));
    t.ok(statsLine !== undefined, 'the proxy printed its stats on stop');
    const stats = JSON.parse((statsLine ?? 'stats {}').slice('stats '.length)) as Record<string, number>;
    t.ok((stats.toConsul ?? 0) >= 4 && (stats.toUpstream ?? 0) >= 2, `both ways counted: ${JSON.stringify(stats)}`);
    t.ok((stats.tcp ?? 0) >= 2, 'the use-vc queries came over TCP');
    t.equal(stats.failures, 0, 'no SERVFAIL of its own');
  },
);

t.test(
  'a local stub resolver (as systemd-resolved) keeps working: only queries to the host resolvers are captured',
  { skip: skip ?? false, timeout: 300_000 },
  async (t) => {
    const w = await namespaceWorld(t, () => 'nameserver 127.0.0.53\n');
    const { host } = w;
    // The stub runs as its own unprivileged user (as systemd-resolve does) and binds port 53.
    await checked(host, 'sysctl', ['-q', '-w', 'net.ipv4.ip_unprivileged_port_start=0']);
    const stubArgs = [dist('test', 'support', 'dns-forwarder-main.js'), '127.0.0.53', '53', host.address, '53'];
    const ids = [`--reuid=${STUB_UID}`, `--regid=${STUB_UID}`, '--clear-groups'];
    const stub = w.keep(host.spawn('setpriv', [...ids, process.execPath, ...stubArgs]));
    await waitFor(async () => (stub.output().includes('listening') ? true : undefined), { what: 'the stub resolver on 127.0.0.53' });
    const before = await resolve(host, OUTSIDE);
    t.equal(before.code, 0, 'without capture the outside name resolves through the stub');

    const proxy = await startProxy(w);
    t.match(proxy.output(), '"upstreams":["127.0.0.53:53"]');
    // The note is the log line after "listening": its chunk of output may arrive a moment later.
    await waitFor(async () => (proxy.output().includes('local stub') ? true : undefined), {
      what: 'the proxy noting that the host resolver is a local stub',
    });
    t.match(proxy.output(), 'local stub', 'the proxy notes that the host resolver is a local stub');
    const saved = await saveNat(host, 'nft');
    // As resolveCaptureFacts does: the resolv.conf servers; the stub's uid is NOT exempted.
    await install(host, 'nft', dnsRuleSet([], ['127.0.0.53']));
    const nat = await saveNat(host, 'nft');
    t.match(nat, '-A MESH_DNS -d 127.0.0.53/32 -p udp', 'only queries to the host resolver are captured');
    t.notMatch(nat, `--uid-owner ${STUB_UID}`, "the stub's uid needs no exemption");
    const api = await resolve(host, 'api.service.consul');
    t.match(api, { code: 0, stdout: API_ADDRESS }, 'api.service.consul resolves through Consul');
    t.same(
      await resolve(host, OUTSIDE),
      before,
      "the outside name resolves as before: app -> proxy -> stub -> the stub's upstream, not captured",
    );
    await remove(host, 'nft');
    t.equal(normalizeSave(await saveNat(host, 'nft')), normalizeSave(saved), 'the nat table equals its saved state');
    t.same(await resolve(host, OUTSIDE), before, 'after removal as before');
  },
);
