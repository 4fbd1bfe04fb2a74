/**
 * The packages as a user meets them, in a booted Debian bookworm container
 * (test/support/nspawn.ts, systemd as PID 1, only loopback):
 * - .deb: install mesh-controlplane (nothing starts), start it, make a join
 *   token with meshctl; install mesh-agent, join, `systemctl enable --now
 *   mesh-agent` with two workloads (echo apps on the bundled Node) and a Consul
 *   dev agent (the provisioned binary as a simple unit); status healthy and a
 *   request web -> api through the mesh carrying web's SPIFFE ID; the agent's
 *   JSON logs in the journal; reload picks up a new workload; the security
 *   scores (agent <= 2.5, control plane <= 1.5) and Envoy's CapEff 0; an
 *   upgrade to a rebuilt newer version keeps the edited agent.yaml and serves
 *   again; stop leaves no capture rule; remove keeps config and state, purge
 *   removes them.
 * - .rpm, with Debian's rpm inside the container (`--nodeps`: no RHEL
 *   dependency names, no SELinux): install, start, upgrade, erase.
 * The packages come from `npm run package`'s script: all four at 0.1.1, shared
 * with packages.test.ts (test/support/test-packages.ts), and mesh-agent at
 * 0.1.2 for the upgrade, built here.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { packageFileName } from '../../scripts/packaging/package-spec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { bootContainer, type Container, nspawnSkipReason } from '../support/nspawn.js';
import { tempDir } from '../support/temp-dir.js';
import { PACKAGE_VERSION, packageFiles, runPackageBuild, sharedPackages } from '../support/test-packages.js';
import { debianRootfs, tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';
import { webApiFiles } from '../support/workload-files.js';

t.setTimeout(900_000);

const skip = await nspawnSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping container tests: ${skip}\n`);

const NODE = '/usr/lib/mesh-agent/node/bin/node';
const PORTS = { web: 8080, api: 8081, webMesh: 18080, apiMesh: 18081, apiLocal: 19001 };
const WEB_ID = 'spiffe://example.org/ns/default/sa/web';
const EDIT_MARK = '# edited by packages-boot.test.ts';
/** controlPlane.address is left out: the agent dials (and capture exempts) the address stored at join. */
const AGENT_EDITS = `
${EDIT_MARK}
nodeName: vm1
advertiseAddress: 127.0.0.1
consul: { address: 127.0.0.1:8500 }
transparentProxy: { enabled: true }
`;
/** What the agent says of BAD_LINE (its error spans two lines, each prefixed in systemctl status). */
const BAD_CONFIG_SAID = /\/etc\/mesh-agent\/agent\.yaml: invalid configuration:[\s\S]*?log\.level: Invalid option/;
/** Appended to agent.yaml: valid YAML, an invalid value (log.level is debug|info|warn|error). */
const BAD_LINE = 'log: { level: loud }';
/** envoy.drainTime for the agent: time for the test to see the drain begin and release the request it holds. */
const DRAIN_TIME = '30s';

interface Built {
  version: string;
  next: string;
  deb: { agent: string; cp: string; agentNext: string };
  rpm: { agent: string; cp: string; agentNext: string };
}

/** The next patch version of PACKAGE_VERSION: mesh-agent rebuilt for the upgrade. */
const NEXT_VERSION = (() => {
  const [major, minor, patch] = PACKAGE_VERSION.split('.').map(Number) as [number, number, number];
  return `${major}.${minor}.${patch + 1}`;
})();

/**
 * The packages at PACKAGE_VERSION (shared with packages.test.ts: built once per
 * test run) and mesh-agent at NEXT_VERSION, built here; from dir instead when given.
 */
async function findPackages(agentNext: string, dir?: string): Promise<Built> {
  const base = dir === undefined ? await sharedPackages(t) : packageFiles(dir, PACKAGE_VERSION);
  const at = (name: 'mesh-agent' | 'mesh-controlplane', format: 'deb' | 'rpm') => {
    const found = base.find((p) => p.name === name && p.format === format);
    if (!found) throw new Error(`no ${format} of ${name}`);
    return found.path;
  };
  const next = (format: 'deb' | 'rpm') => path.join(agentNext, packageFileName('mesh-agent', NEXT_VERSION, format));
  return {
    version: PACKAGE_VERSION,
    next: NEXT_VERSION,
    deb: { agent: at('mesh-agent', 'deb'), cp: at('mesh-controlplane', 'deb'), agentNext: next('deb') },
    rpm: { agent: at('mesh-agent', 'rpm'), cp: at('mesh-controlplane', 'rpm'), agentNext: next('rpm') },
  };
}

let built: Promise<Built> | undefined;
/**
 * Built once for both tests. MESH_TEST_PACKAGES=DIR takes them from DIR instead
 * (all four at PACKAGE_VERSION and mesh-agent at NEXT_VERSION, built there with
 * `npm run package -- --out DIR --version 0.1.1` and `... --version 0.1.2 --only mesh-agent`).
 */
function packages(): Promise<Built> {
  const prebuilt = process.env.MESH_TEST_PACKAGES;
  built ??= (async () => {
    let agentNext = prebuilt;
    if (agentNext === undefined) {
      agentNext = await tempDir(t, 'mesh-pkgs-');
      await runPackageBuild(agentNext, ['--version', NEXT_VERSION, '--only', 'mesh-agent']);
    }
    const found = await findPackages(agentNext, prebuilt);
    for (const file of [...Object.values(found.deb), ...Object.values(found.rpm)]) {
      if (!existsSync(file)) throw new Error(`MESH_TEST_PACKAGES=${prebuilt}: ${path.basename(file)} is missing`);
    }
    return found;
  })();
  return built;
}

const CONSUL_UNIT = `[Unit]
Description=Consul dev agent for the package test
[Service]
ExecStart=/usr/local/bin/consul agent -dev -client 127.0.0.1 -bind 127.0.0.1 -log-level warn
[Install]
WantedBy=multi-user.target
`;

const echoUnit = (name: string, port: number) => `[Unit]
Description=echo app ${name}
[Service]
DynamicUser=yes
ExecStart=${NODE} /opt/echo/echo-app-main.js ${name} ${port}
`;

/** A booted container with Consul running as a unit and the echo apps' files (their units start once Node is installed). */
async function meshContainer(t: Parameters<typeof bootContainer>[0]): Promise<Container> {
  const [{ path: rootfs }, { consul }] = await Promise.all([debianRootfs(), tools()]);
  const ct = await bootContainer(t, rootfs);
  await ct.copyIn(consul.path, '/usr/local/bin/consul', 0o755);
  await ct.writeFile('/etc/systemd/system/consul.service', CONSUL_UNIT);
  const support = path.join(repoRoot(), 'dist', 'test', 'support');
  await ct.copyIn(path.join(support, 'echo-app-main.js'), '/opt/echo/echo-app-main.js');
  await ct.copyIn(path.join(support, 'mesh-apps.js'), '/opt/echo/mesh-apps.js');
  await ct.writeFile('/opt/echo/package.json', '{ "type": "module" }\n');
  await ct.writeFile('/etc/systemd/system/echo-web.service', echoUnit('web', PORTS.web));
  await ct.writeFile('/etc/systemd/system/echo-api.service', echoUnit('api', PORTS.api));
  await ct.execChecked('systemctl', ['daemon-reload']);
  await ct.execChecked('systemctl', ['enable', '--now', 'consul.service']);
  await waitFor(
    async () => ((await ct.exec('curl', ['-sf', 'http://127.0.0.1:8500/v1/status/leader'])).stdout.includes(':') ? true : undefined),
    {
      what: 'Consul in the container to elect itself',
      timeoutMs: 60_000,
      intervalMs: 250,
    },
  );
  return ct;
}

const out = async (ct: Container, command: string, ...args: string[]) => (await ct.execChecked(command, args)).stdout.trim();
const mainPid = (ct: Container) => out(ct, 'systemctl', 'show', '-p', 'MainPID', '--value', 'mesh-agent');
const isActive = async (ct: Container, unit: string) => (await ct.exec('systemctl', ['is-active', unit])).stdout.trim();
/**
 * The unit's state once a reload has run its course. The agent sends RELOADING=1 after it logs the SIGHUP and
 * READY=1 when the reload is done, so for that while `systemctl is-active` says "reloading" (CI failed once
 * reading it there): wait until it says anything else, and return that.
 */
const settledAfterReload = (ct: Container, unit: string) =>
  waitFor(
    async () => {
      const state = await isActive(ct, unit);
      return state === 'reloading' ? undefined : state;
    },
    { what: `${unit} to leave "reloading"`, timeoutMs: 20_000, intervalMs: 100 },
  );

/** The control plane started, a token for vm1 and the CA bundle in /root. */
async function controlPlaneAndToken(t: Test, ct: Container): Promise<void> {
  t.equal(await isActive(ct, 'mesh-controlplane'), 'inactive', 'installing mesh-controlplane starts nothing');
  t.match(await out(ct, 'getent', 'passwd', 'mesh-controlplane'), /^mesh-controlplane:/, 'the package made the mesh-controlplane user');
  await ct.execChecked('systemctl', ['start', 'mesh-controlplane']);
  t.equal(await isActive(ct, 'mesh-controlplane'), 'active', 'systemctl start mesh-controlplane returned with it active');
  await ct.sh(`meshctl token create --node vm1 --allow 'spiffe://example.org/ns/default/sa/*' > /root/vm1.token`);
  await ct.sh('meshctl ca bundle > /root/ca.pem');
  t.match(await ct.readFile('/root/ca.pem'), /BEGIN CERTIFICATE/, 'meshctl gave the CA bundle');
}

/**
 * Joins vm1 (no --data-dir: the packaged default), edits agent.yaml, writes web and api, starts their apps, then
 * `systemctl enable --now mesh-agent`. With badStart, first a malformed agent.yaml: `systemctl start` fails, naming it.
 */
async function joinAndStartAgent(t: Test, ct: Container, options: { badStart?: boolean } = {}): Promise<void> {
  t.equal(await isActive(ct, 'mesh-agent'), 'inactive', 'installing mesh-agent starts nothing');
  for (const user of ['mesh-agent', 'mesh-envoy']) {
    t.match(await out(ct, 'getent', 'passwd', user), new RegExp(`^${user}:`), `the package made the ${user} user`);
  }
  const join = await ct.execChecked('mesh-agent', [
    'join',
    '--controlplane',
    '127.0.0.1:8443',
    '--token-file',
    '/root/vm1.token',
    '--ca-bundle',
    '/root/ca.pem',
  ]);
  t.match(join.stdout + join.stderr, /systemctl enable --now mesh-agent/, 'join prints the next step');
  t.equal(await out(ct, 'find', '/var/lib/mesh-agent', '!', '-user', 'mesh-agent'), '', 'everything the join wrote belongs to mesh-agent');

  await ct.sh(`cat >> /etc/mesh-agent/agent.yaml <<'EOF'\n${AGENT_EDITS}EOF`);
  // Long enough for the request in flight across the upgrade (the shipped file has envoy: with drainTime commented).
  await ct.sh(
    `sed -i 's/^  # drainTime: 5s$/  drainTime: ${DRAIN_TIME}/' /etc/mesh-agent/agent.yaml && grep -q '^  drainTime: ${DRAIN_TIME}$' /etc/mesh-agent/agent.yaml`,
  );
  for (const [file, text] of Object.entries(webApiFiles(PORTS, { check: true })))
    await ct.writeFile(`/etc/mesh-agent/workloads.d/${file}`, text);
  await ct.execChecked('systemctl', ['start', 'echo-web', 'echo-api']);
  if (options.badStart === true) await startFailsOnBadConfig(t, ct);
  await ct.execChecked('systemctl', ['enable', '--now', 'mesh-agent'], { timeoutMs: 180_000 });
  t.equal(await isActive(ct, 'mesh-agent'), 'active', 'systemctl enable --now mesh-agent returned with it active');
}

/** What systemd says about the agent: `systemctl status` and its journal. */
async function whatSystemdSays(ct: Container): Promise<{ status: string; journal: string }> {
  const status = (await ct.exec('systemctl', ['status', 'mesh-agent', '--no-pager', '-l', '-n', '30'])).stdout;
  const journal = (await ct.exec('journalctl', ['-u', 'mesh-agent', '-o', 'cat', '--no-pager', '-n', '60'])).stdout;
  return { status, journal };
}

/** A malformed agent.yaml: `systemctl start` fails, with the file and the field path in `systemctl status` and the journal; no restart loop. */
async function startFailsOnBadConfig(t: Test, ct: Container): Promise<void> {
  await ct.sh(`cp /etc/mesh-agent/agent.yaml /root/agent.yaml.good && echo '${BAD_LINE}' >> /etc/mesh-agent/agent.yaml`);
  const start = await ct.exec('systemctl', ['start', 'mesh-agent'], { timeoutMs: 120_000 });
  t.not(start.code, 0, `systemctl start mesh-agent fails with "${BAD_LINE}" in agent.yaml`);
  const said = await whatSystemdSays(ct);
  t.match(said.status, BAD_CONFIG_SAID, 'systemctl status names the file and the field path');
  t.match(said.status, /status=78/, 'systemctl status shows exit 78 (EX_CONFIG)');
  t.match(said.journal, BAD_CONFIG_SAID, 'the journal names the file and the field path');
  t.equal(await isActive(ct, 'mesh-agent'), 'failed', 'the unit is failed, not restarting (RestartPreventExitStatus=78)');
  await ct.sh('cp /root/agent.yaml.good /etc/mesh-agent/agent.yaml && systemctl reset-failed mesh-agent');
}

/** `systemctl reload` with a malformed agent.yaml fails and says why; the agent keeps serving with its previous config. */
async function reloadKeepsServingOnBadConfig(t: Test, ct: Container, what: string): Promise<void> {
  const pid = await mainPid(ct);
  await ct.sh(`cp /etc/mesh-agent/agent.yaml /root/agent.yaml.good && echo '${BAD_LINE}' >> /etc/mesh-agent/agent.yaml`);
  const reload = await ct.exec('systemctl', ['reload', 'mesh-agent']);
  t.not(reload.code, 0, 'systemctl reload fails on a malformed agent.yaml');
  t.match((await whatSystemdSays(ct)).journal, BAD_CONFIG_SAID, 'the journal says why: file and field path');
  // A SIGHUP that reaches the agent anyway (not through systemctl reload): rejected, said by mesh-agent status.
  await ct.execChecked('systemctl', ['kill', '--kill-whom=main', '-s', 'HUP', 'mesh-agent']);
  const status = await waitFor(
    async () => {
      const r = await ct.exec('mesh-agent', ['status']);
      return /reload rejected/.test(r.stdout) ? r.stdout : undefined;
    },
    { what: 'mesh-agent status to show the rejected reload', timeoutMs: 20_000, intervalMs: 250 },
  );
  t.match(
    status,
    /agent\.yaml: reload rejected .*log\.level.*running with the previous configuration/,
    'mesh-agent status says the reload was rejected, and why',
  );
  t.equal(await mainPid(ct), pid, 'the same agent process runs');
  t.equal(await settledAfterReload(ct, 'mesh-agent'), 'active', 'the agent is still active');
  const r = await ct.exec('curl', ['-sf', `http://127.0.0.1:${PORTS.apiLocal}/hello`]);
  t.equal(r.code, 0, `web still reaches api through the mesh with the previous config (${what})`);
  await ct.sh('cp /root/agent.yaml.good /etc/mesh-agent/agent.yaml');
  await ct.execChecked('systemctl', ['reload', 'mesh-agent']);
}

/** `mesh-agent status` says healthy, and web reaches api through the mesh as web. */
async function servesAsWeb(t: Test, ct: Container, what: string): Promise<void> {
  const status = await waitFor(
    async () => {
      const r = await ct.exec('mesh-agent', ['status']);
      return /healthy/.test(r.stdout) && !/unhealthy/.test(r.stdout) ? r.stdout : undefined;
    },
    { what: `mesh-agent status to say healthy (${what})`, timeoutMs: 60_000, intervalMs: 500 },
  ).catch(async (err: Error) => {
    throw new Error(
      `${err.message}\n${(await ct.exec('mesh-agent', ['status'])).stdout}\n${(await ct.exec('journalctl', ['-u', 'mesh-agent', '-n', '40', '--no-pager'])).stdout}`,
    );
  });
  t.match(status, /node vm1: healthy/, `mesh-agent status: healthy (${what})`);
  const answer = await waitFor(
    async () => {
      const r = await ct.exec('curl', ['-sf', `http://127.0.0.1:${PORTS.apiLocal}/hello`]);
      return r.code === 0 ? (JSON.parse(r.stdout) as { app: string; xfcc: string }) : undefined;
    },
    { what: `a request web -> api through the mesh (${what})`, timeoutMs: 40_000, intervalMs: 250 },
  );
  t.equal(answer.app, 'api', `api answered through web's upstream port (${what})`);
  t.match(answer.xfcc, `URI=${WEB_ID}`, `api saw the caller's SPIFFE ID ${WEB_ID} (${what})`);
}

/** Our capture rules in the container's iptables (both backends, both families). */
async function captureRules(ct: Container): Promise<string> {
  const r = await ct.exec('bash', [
    '-c',
    'for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do $s 2>/dev/null; done',
  ]);
  return r.stdout
    .split('\n')
    .filter((l) => l.includes('MESH_'))
    .join('\n');
}

function exposure(text: string, unit: string): number {
  const m = new RegExp(`Overall exposure level for ${unit}\\.service: (\\d+(?:\\.\\d+)?)`).exec(text);
  if (!m?.[1]) throw new Error(`no exposure level for ${unit} in:\n${text.slice(-2000)}`);
  return Number(m[1]);
}

t.test(
  'the .deb packages in a booted Debian: install, join, start, serve, reload, harden, upgrade, stop, remove, purge',
  { skip: skip ?? false },
  async (t) => {
    const pkgs = await packages();
    const ct = await meshContainer(t);
    for (const file of Object.values(pkgs.deb)) await ct.copyIn(file, `/root/${path.basename(file)}`);

    // 1. The control plane and a token.
    await ct.execChecked('apt-get', ['install', '-y', `/root/${path.basename(pkgs.deb.cp)}`]);
    await controlPlaneAndToken(t, ct);

    // 2. The agent: join, two workloads, Consul, enable --now.
    await ct.execChecked('apt-get', ['install', '-y', `/root/${path.basename(pkgs.deb.agent)}`]);
    await joinAndStartAgent(t, ct);

    // 3. Healthy, and a request between the workloads with the caller's identity.
    await servesAsWeb(t, ct, pkgs.version);

    // 4. The journal holds the agent's JSON logs; reload re-reads the workloads.
    const journal = (await out(ct, 'journalctl', '-u', 'mesh-agent', '-o', 'cat', '--no-pager')).split('\n');
    const json = journal.filter((l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        return typeof o === 'object' && o !== null && ('msg' in o || 'message' in o);
      } catch {
        return false;
      }
    });
    t.ok(json.length > 0, `the journal holds the agent's JSON log lines (${json.length} of ${journal.length})`);
    const hups = async () =>
      (await out(ct, 'journalctl', '-u', 'mesh-agent', '-o', 'cat', '--no-pager')).split('SIGHUP: reloading').length - 1;
    const pidBeforeReload = await mainPid(ct);
    const hupsBefore = await hups();
    await ct.execChecked('systemctl', ['reload', 'mesh-agent']);
    await waitFor(async () => ((await hups()) > hupsBefore ? true : undefined), {
      what: 'the agent to log that SIGHUP reloads it',
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    t.pass('systemctl reload mesh-agent reached the agent as SIGHUP (its journal says so)');
    t.equal(await mainPid(ct), pidBeforeReload, 'reload kept the same process');
    t.equal(await settledAfterReload(ct, 'mesh-agent'), 'active', 'the agent still runs after reload');
    await reloadKeepsServingOnBadConfig(t, ct, pkgs.version);

    // 5. Hardening: the security scores, Envoy without capabilities.
    const agentScore = exposure(await out(ct, 'systemd-analyze', 'security', '--no-pager', 'mesh-agent.service'), 'mesh-agent');
    const cpScore = exposure(await out(ct, 'systemd-analyze', 'security', '--no-pager', 'mesh-controlplane.service'), 'mesh-controlplane');
    t.ok(agentScore <= 2.5, `systemd-analyze security mesh-agent: ${agentScore} <= 2.5`);
    t.ok(cpScore <= 1.5, `systemd-analyze security mesh-controlplane: ${cpScore} <= 1.5`);
    const envoyPids = (await out(ct, 'pgrep', '-x', 'envoy')).split('\n');
    t.ok(envoyPids.length >= 1 && envoyPids[0] !== '', `Envoy runs (pids ${envoyPids.join(' ')})`);
    for (const pid of envoyPids) {
      const status = await out(ct, 'cat', `/proc/${pid}/status`);
      t.match(status, /^CapEff:\s+0000000000000000$/m, `Envoy ${pid}: CapEff 0`);
      t.equal(await out(ct, 'ps', '-o', 'user=', '-p', pid), 'mesh-envoy', `Envoy ${pid} runs as mesh-envoy`);
    }

    // 6. Upgrade to the rebuilt newer version with a request in flight: api holds its answer until the old agent
    // drains Envoy (its journal says so), then answers; the request still gets through, as web. The upgrade is
    // dpkg -i in its two phases: unpack (new files; the old agent serves on), then configure (postinst restarts
    // the agent). The request is held across the restart only: Envoy's 15 s route timeout would end one held
    // across a slow unpack too.
    const before = await mainPid(ct);
    await ct.execChecked('dpkg', ['--unpack', `/root/${path.basename(pkgs.deb.agentNext)}`], { timeoutMs: 180_000 });
    t.equal(await mainPid(ct), before, 'unpacking the new version leaves the old agent running');
    const drains = async () =>
      (await out(ct, 'journalctl', '-u', 'mesh-agent', '-o', 'cat', '--no-pager')).split('draining Envoy listeners').length - 1;
    const drainsBefore = await drains();
    const held = ct.exec('curl', ['-s', '-w', '\n%{http_code}', `http://127.0.0.1:${PORTS.apiLocal}/hold`], { timeoutMs: 180_000 });
    // Straight to the api app (loopback is never captured): how many requests it holds, and later the release.
    const api = (what: string) => ct.exec('curl', ['-sf', `http://127.0.0.1:${PORTS.api}/${what}`]);
    await waitFor(
      async () => {
        const r = await api('in-flight');
        return r.code === 0 && (JSON.parse(r.stdout) as { inFlight: number }).inFlight > 0 ? true : undefined;
      },
      { what: 'the held request to reach api', timeoutMs: 20_000, intervalMs: 100 },
    );
    const upgrade = ct.execChecked('dpkg', ['--configure', 'mesh-agent'], { timeoutMs: 180_000 });
    await waitFor(async () => ((await drains()) > drainsBefore ? true : undefined), {
      what: 'the upgrade to stop the old agent, which drains Envoy',
      timeoutMs: 150_000,
      intervalMs: 200,
    });
    t.equal(JSON.parse((await api('release')).stdout).released, 1, 'api answered the held request while Envoy was draining');
    await upgrade;
    const [body = '', code = ''] = (await held).stdout.trim().split('\n');
    t.equal(code, '200', 'the request in flight during the upgrade got its answer');
    t.match(body, `URI=${WEB_ID}`, '...from api, through the mesh, as web');
    t.equal(await out(ct, 'dpkg-query', '-W', `-f=\${Version}`, 'mesh-agent'), pkgs.next, `mesh-agent ${pkgs.next} is installed`);
    t.match(await ct.readFile('/etc/mesh-agent/agent.yaml'), EDIT_MARK, 'the edited agent.yaml is kept');
    t.not(await mainPid(ct), before, 'the upgrade restarted the running agent');
    await servesAsWeb(t, ct, `after the upgrade to ${pkgs.next}`);

    // 7. Stop leaves no capture rule; remove keeps config and state; purge removes them.
    t.not(await captureRules(ct), '', 'capture rules are installed while the agent runs');
    await ct.execChecked('systemctl', ['stop', 'mesh-agent']);
    t.equal(await captureRules(ct), '', 'no capture rule is left after systemctl stop');
    await ct.execChecked('apt-get', ['remove', '-y', 'mesh-agent', 'mesh-controlplane']);
    t.equal(await isActive(ct, 'mesh-controlplane'), 'inactive', 'remove stopped the control plane');
    t.equal(
      await out(ct, 'bash', '-c', 'ls -d /etc/mesh-agent/agent.yaml /var/lib/mesh-agent /etc/mesh-controlplane /var/lib/mesh-controlplane'),
      ['/etc/mesh-agent/agent.yaml', '/etc/mesh-controlplane', '/var/lib/mesh-agent', '/var/lib/mesh-controlplane'].join('\n'),
      'remove keeps config and state',
    );
    t.equal((await ct.exec('test', ['-e', '/usr/bin/mesh-agent'])).code, 1, 'remove took the program away');
    await ct.execChecked('apt-get', ['purge', '-y', 'mesh-agent', 'mesh-controlplane']);
    const left = await ct.exec('bash', [
      '-c',
      'ls -d /etc/mesh-agent /var/lib/mesh-agent /etc/mesh-controlplane /var/lib/mesh-controlplane 2>/dev/null',
    ]);
    t.equal(left.stdout.trim(), '', 'purge removed config and state');
  },
);

t.test('the .rpm packages in a booted Debian with rpm --nodeps: install, start, upgrade, erase', { skip: skip ?? false }, async (t) => {
  const pkgs = await packages();
  const ct = await meshContainer(t);
  await ct.copyIn(pkgs.rpm.cp, '/root/cp.rpm');
  await ct.copyIn(pkgs.rpm.agent, '/root/agent.rpm');
  await ct.copyIn(pkgs.rpm.agentNext, '/root/agent-next.rpm');

  await ct.execChecked('rpm', ['-ivh', '--nodeps', '/root/cp.rpm']);
  await controlPlaneAndToken(t, ct);
  await ct.execChecked('rpm', ['-ivh', '--nodeps', '/root/agent.rpm']);
  await joinAndStartAgent(t, ct, { badStart: true });
  await servesAsWeb(t, ct, `rpm ${pkgs.version}`);

  const before = await mainPid(ct);
  await ct.execChecked('rpm', ['-Uvh', '--nodeps', '/root/agent-next.rpm'], { timeoutMs: 180_000 });
  t.equal(await out(ct, 'rpm', '-q', '--qf', '%{VERSION}', 'mesh-agent'), pkgs.next, `mesh-agent ${pkgs.next} is installed`);
  t.match(await ct.readFile('/etc/mesh-agent/agent.yaml'), EDIT_MARK, 'the edited agent.yaml is kept');
  t.not(await mainPid(ct), before, 'the upgrade restarted the running agent');
  await servesAsWeb(t, ct, `rpm after the upgrade to ${pkgs.next}`);

  t.not(await captureRules(ct), '', 'capture rules are installed while the agent runs');
  await ct.execChecked('rpm', ['-e', 'mesh-agent', 'mesh-controlplane']);
  t.equal(await isActive(ct, 'mesh-agent'), 'inactive', 'erase stopped the agent');
  t.equal(await isActive(ct, 'mesh-controlplane'), 'inactive', 'erase stopped the control plane');
  t.equal(await captureRules(ct), '', 'no capture rule is left after erase');
  t.equal((await ct.exec('rpm', ['-q', 'mesh-agent'])).code, 1, 'rpm no longer knows mesh-agent');
  t.equal((await ct.exec('test', ['-e', '/usr/bin/mesh-agent'])).code, 1, 'erase took the program away');
});
