/**
 * `npm run demo [-- --check]`: a one-host mesh with the real parts.
 *
 * It starts a control plane (SQLite in .demo/controlplane), a Consul dev
 * agent, two sample apps (web and api, plain HTTP on 127.0.0.1) and one
 * mesh-agent joined with a fresh token, which runs the real Envoy. Then web
 * calls api through its upstream port: the request leaves through Envoy, goes
 * mutual TLS to api's mesh port, and api answers with the peer SPIFFE ID
 * Envoy put in x-forwarded-client-cert. It prints that, shows that plaintext
 * to api's mesh port is refused, then applies an authorization policy with
 * meshctl (only web may call api) and shows a request from a third identity,
 * probe, being denied with 403 while web still gets through. Last it prints
 * `mesh-agent status`.
 *
 * Interactive: waits for Ctrl-C, then stops everything and removes .demo.
 * --check: exits at once, 0 only if the mTLS request succeeded with web's ID,
 * plaintext was refused, and the policy denied probe and allowed web. Logs stay in .demo/logs when something fails.
 * --tproxy (as root): the transparent-proxy demo of demo-tproxy.ts instead, inside network namespaces.
 * --k8s (as root): VM and Kubernetes workloads in one mesh (demo-k8s.ts), with a kube-apiserver too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS, agentEnvAssignments } from '../agent/node-flags.js';
import { runChecked } from '../lib/exec.js';
import { freePorts } from '../lib/ports.js';
import { waitFor } from '../lib/wait.js';
import { runK8sDemo } from './demo-k8s.js';
import { runTproxyDemo } from './demo-tproxy.js';
import { defaultCacheDir, firstRunNotice, provision } from './provision.js';
import { repoRoot } from './repo-root.js';
import { untilStopSignal } from './stop-signal.js';

const USAGE = `Usage: npm run demo [-- --check] [-- --tproxy | --k8s]

Starts, on this host: a control plane, a Consul dev agent, one mesh-agent with three
workloads (web and probe call api through the mesh) and its Envoy. Prints the request
from web to api with the peer SPIFFE ID api saw, applies an authorization policy (only
web may call api) and shows probe's request denied, then the agent's status.

Options:
  --check   do not wait for Ctrl-C: exit 0 if the mTLS request succeeded, plaintext
            to api's mesh port was refused and the policy denied probe but not web,
            1 otherwise
  --tproxy  as root: the transparent proxy between network namespaces (web calls api
            by address with no upstream port; rules only inside the demo's namespaces)
  --k8s     as root: VM and Kubernetes workloads in one mesh: starts a kube-apiserver
            and etcd too; pods and a VM in network namespaces call each other through
            the mesh, each side seeing the other's SPIFFE ID (docs/operations/kubernetes.md)
  --help    show this help
`;

const TRUST_DOMAIN = 'demo.mesh';
const NODE = 'demo-vm';
const WEB_ID = `spiffe://${TRUST_DOMAIN}/ns/demo/sa/web`;

/** The policy step 8 applies: api accepts calls from web only. */
const AUTHZ_POLICY = `apiVersion: mesh.v1
kind: AuthorizationPolicy
metadata:
  name: api-callers
spec:
  target: { service: api }
  defaultAction: deny
  rules:
    - name: web-may-call
      action: allow
      from: { ids: [${WEB_ID}] }
`;

const root = repoRoot();
/** MESH_DEMO_DIR moves the demo's folder (tests run the demo in a temp folder). */
const demoDir = process.env.MESH_DEMO_DIR ?? path.join(root, '.demo');
const logsDir = path.join(demoDir, 'logs');
const children: Array<{ name: string; child: ChildProcess; output: () => string }> = [];
/** --tproxy, --k8s: the demos of scripts/demo-tproxy.ts and demo-k8s.ts, which keep no logs in .demo. */
let netnsDemo = false;
const servers: http.Server[] = [];

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A long-running child with its output in .demo/logs/<name>.log. */
function start(name: string, command: string, args: string[]): { child: ChildProcess; output: () => string } {
  const log = createWriteStream(path.join(logsDir, `${name}.log`));
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    tail = (tail + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const output = () => tail;
  children.push({ name, child, output });
  return { child, output };
}

/** Runs a command to completion; returns stdout; throws with the end of stderr on failure. */
async function runToEnd(command: string, args: string[]): Promise<string> {
  return (await runChecked(command, args, 'MESH_E_PROCESS_START')).stdout;
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** api: answers with the peer identity Envoy forwarded. web: /call calls api through its upstream port. */
async function startApps(apiPort: number, webPort: number, apiUpstreamPort: number, probePort: number): Promise<void> {
  const api = http.createServer((req, res) => {
    const xfcc = String(req.headers['x-forwarded-client-cert'] ?? '');
    const peer = /(?:^|;)URI=([^;,]+)/.exec(xfcc)?.[1] ?? '';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ service: 'api', peer, xfcc }));
  });
  const web = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.end('ok');
      return;
    }
    fetch(`http://127.0.0.1:${apiUpstreamPort}/hello`, { signal: AbortSignal.timeout(5_000) })
      .then(async (r) => {
        const body = await r.text();
        res.writeHead(r.status === 200 ? 200 : 502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ service: 'web', upstreamStatus: r.status, api: r.status === 200 ? JSON.parse(body) : body }));
      })
      .catch((err: Error) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ service: 'web', error: err.message }));
      });
  });
  // probe: a third identity on the same host; it only answers its health check (the demo calls api through its upstream port).
  const probe = http.createServer((_req, res) => res.end('ok'));
  for (const [server, port] of [
    [api, apiPort],
    [web, webPort],
    [probe, probePort],
  ] as const) {
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    servers.push(server);
  }
}

/** A plaintext HTTP request to a mesh port; true when it got no HTTP answer (refused). */
function plaintextRefused(port: number): Promise<{ refused: boolean; how: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (refused: boolean, how: string) => {
      socket.destroy();
      resolve({ refused, how });
    };
    socket.setTimeout(5_000, () => done(true, 'no answer within 5 s'));
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n'));
    socket.on('data', (c) => {
      data += c.toString('latin1');
    });
    socket.on('error', (err) => done(true, err.message));
    socket.on('close', () =>
      /^HTTP\/1\.[01] \d{3}/.test(data)
        ? done(false, data.split('\r\n')[0] ?? '')
        : done(true, `connection closed by Envoy after ${data.length} bytes (TLS required)`),
    );
  });
}

/** After a failed step: which of the demo's processes had already exited, how, and the end of what they wrote. */
function reportExited(): void {
  for (const { name, child, output } of children) {
    if (child.exitCode === null && child.signalCode === null) continue;
    const how = child.signalCode === null ? `code ${child.exitCode}` : `signal ${child.signalCode}`;
    const tail = output().trimEnd().split('\n').slice(-40).join('\n');
    say('');
    say(`EXITED   ${name} (pid ${child.pid}) exited with ${how} before the demo stopped it; the end of its output:`);
    process.stdout.write(tail === '' ? '(no output)\n' : `${tail}\n`);
  }
}

async function stopAll(): Promise<void> {
  // The agent first (it deregisters from Consul and drains Envoy), then the rest.
  for (const { child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(timer);
  }
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function main(): Promise<number> {
  let values: { check?: boolean; help?: boolean; tproxy?: boolean; k8s?: boolean };
  try {
    ({ values } = parseArgs({
      options: { check: { type: 'boolean' }, tproxy: { type: 'boolean' }, k8s: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const check = values.check === true;
  if (values.tproxy === true && values.k8s === true) {
    process.stderr.write(`demo: --tproxy and --k8s are two demos: choose one\n\n${USAGE}`);
    return 2;
  }
  if (values.tproxy === true || values.k8s === true) {
    netnsDemo = true;
    return values.k8s === true ? runK8sDemo(check) : runTproxyDemo(check);
  }

  await rm(demoDir, { recursive: true, force: true });
  await mkdir(logsDir, { recursive: true });
  const cacheDir = defaultCacheDir(process.env);
  const tools = await provision({
    root,
    cacheDir,
    // Silent when everything is cached; the first run says what it fetches and builds, and that it takes minutes.
    progress: firstRunNotice(
      (line) => process.stderr.write(`provision: ${line}\n`),
      `first run: fetching Envoy and building Consul (and two small test tools) into ${cacheDir}; this may take several minutes, later runs reuse them`,
    ),
  });
  const node = process.execPath;
  const agentMain = path.join(root, 'dist', 'agent', 'main.js');
  const cpMain = path.join(root, 'dist', 'controlplane', 'main.js');
  const meshctl = path.join(root, 'dist', 'controlplane', 'cli', 'main.js');

  const [
    consulHttp,
    consulGrpc,
    serfLan,
    serfWan,
    consulServer,
    cpPort,
    adminPort,
    statusPort,
    apiPort,
    webPort,
    apiLocal,
    apiMesh,
    webMesh,
    probePort,
    probeLocal,
    probeMesh,
  ] = await freePorts(16);

  // 1. Consul dev agent.
  const consulDir = path.join(demoDir, 'consul');
  await mkdir(consulDir, { recursive: true });
  await writeFile(
    path.join(consulDir, 'config.json'),
    JSON.stringify({
      node_name: 'demo-consul',
      bind_addr: '127.0.0.1',
      client_addr: '127.0.0.1',
      advertise_addr: '127.0.0.1',
      data_dir: path.join(consulDir, 'data'),
      log_level: 'warn',
      disable_update_check: true,
      ports: { http: consulHttp, grpc: consulGrpc, grpc_tls: -1, dns: -1, serf_lan: serfLan, serf_wan: serfWan, server: consulServer },
    }),
  );
  const consul = start('consul', tools.consul.path, ['agent', '-dev', `-config-file=${path.join(consulDir, 'config.json')}`]);
  const consulAddr = `127.0.0.1:${consulHttp}`;
  await waitFor(
    async () => {
      if (consul.child.exitCode !== null) throw new Error(`consul exited: ${consul.output().slice(-500)}`);
      const { status, body } = await getJson(`http://${consulAddr}/v1/status/leader`).catch(() => ({ status: 0, body: {} }));
      return status === 200 && JSON.stringify(body) !== '""' ? true : undefined;
    },
    { what: 'Consul to elect a leader', timeoutMs: 60_000, intervalMs: 250 },
  );
  say(`started  Consul ${tools.consul.version} dev agent on ${consulAddr}`);

  // 2. Control plane.
  const cpDir = path.join(demoDir, 'controlplane');
  const cp = start('controlplane', node, [
    cpMain,
    'run',
    '--data-dir',
    cpDir,
    '--listen',
    `127.0.0.1:${cpPort}`,
    '--trust-domain',
    TRUST_DOMAIN,
  ]);
  const cpAddr = await waitFor(
    async () => {
      if (cp.child.exitCode !== null) throw new Error(`mesh-controlplane exited: ${cp.output().slice(-500)}`);
      return /"listen":"([^"]+)"/.exec(cp.output())?.[1];
    },
    { what: 'the control plane to listen', timeoutMs: 30_000, intervalMs: 250 },
  );
  say(`started  mesh-controlplane on ${cpAddr} (trust domain ${TRUST_DOMAIN}, SQLite in ${path.relative(root, cpDir)})`);

  // 3. Join the agent with a fresh single-use token.
  const token = (
    await runToEnd(node, [
      meshctl,
      'token',
      'create',
      '--data-dir',
      cpDir,
      '--node',
      NODE,
      '--allow',
      `spiffe://${TRUST_DOMAIN}/ns/demo/sa/*`,
    ])
  ).trim();
  const bundleFile = path.join(demoDir, 'ca-bundle.pem');
  await writeFile(bundleFile, await runToEnd(node, [meshctl, 'ca', 'bundle', '--data-dir', cpDir]));
  const agentDir = path.join(demoDir, 'agent');
  const dataDir = path.join(agentDir, 'data');
  const joined = await runToEnd(node, [
    agentMain,
    'join',
    '--controlplane',
    cpAddr,
    '--token',
    token,
    '--ca-bundle',
    bundleFile,
    '--data-dir',
    dataDir,
  ]);
  say(`joined   node ${NODE}: ${joined.trim().split('\n')[0]}`);

  // 4. Sample apps and their workload files.
  await startApps(apiPort, webPort, apiLocal, probePort);
  const workloadsDir = path.join(agentDir, 'workloads.d');
  await mkdir(workloadsDir, { recursive: true });
  await writeFile(
    path.join(workloadsDir, 'api.yaml'),
    `name: api\nnamespace: demo\nport: ${apiPort}\nmeshPort: ${apiMesh}\nprotocol: http\ncheck: { http: "http://127.0.0.1:${apiPort}/health", interval: 2s }\n`,
  );
  await writeFile(
    path.join(workloadsDir, 'web.yaml'),
    `name: web\nnamespace: demo\nport: ${webPort}\nmeshPort: ${webMesh}\nprotocol: http\ncheck: { http: "http://127.0.0.1:${webPort}/health", interval: 2s }\nupstreams:\n  - { service: api, localPort: ${apiLocal} }\n`,
  );
  await writeFile(
    path.join(workloadsDir, 'probe.yaml'),
    `name: probe\nnamespace: demo\nport: ${probePort}\nmeshPort: ${probeMesh}\nprotocol: http\nupstreams:\n  - { service: api, localPort: ${probeLocal} }\n`,
  );
  say(
    `started  sample apps: web on 127.0.0.1:${webPort} (calls api via 127.0.0.1:${apiLocal}), api on 127.0.0.1:${apiPort}, probe (calls api via 127.0.0.1:${probeLocal})`,
  );

  // 5. The agent, which starts Envoy.
  const configFile = path.join(agentDir, 'agent.yaml');
  const statusAddr = `127.0.0.1:${statusPort}`;
  await writeFile(
    configFile,
    JSON.stringify(
      {
        nodeName: NODE,
        trustDomain: TRUST_DOMAIN,
        dataDir,
        workloadsDir,
        advertiseAddress: '127.0.0.1',
        controlPlane: { address: cpAddr, caBundle: bundleFile },
        consul: { address: consulAddr, retryInitial: '200ms', retryMax: '2s', syncInterval: '2s' },
        envoy: { binary: tools.envoy.path, adminPort, drainTime: '2s', concurrency: 1 },
        status: { listen: statusAddr },
        log: { format: 'human' },
      },
      null,
      2,
    ),
  );
  // The agent's own environment and V8 flags, as its #! line gives them when it is run directly.
  const agent = start('agent', 'env', [...agentEnvAssignments(), node, ...AGENT_NODE_FLAGS, agentMain, 'run', '--config', configFile]);
  type Status = { healthy: boolean; problems: string[]; envoy?: { state: string; pid?: number } };
  const status = await waitFor(
    async () => {
      if (agent.child.exitCode !== null) throw new Error(`mesh-agent exited: ${agent.output().slice(-1500)}`);
      const { body } = await getJson(`http://${statusAddr}/status`);
      return (body as unknown as Status).healthy ? (body as unknown as Status) : undefined;
    },
    { what: 'the agent to report healthy', timeoutMs: 60_000, intervalMs: 250 },
  );
  say(
    `started  mesh-agent (status on ${statusAddr}) and Envoy ${tools.envoy.version} (pid ${status.envoy?.pid ?? '?'}, admin 127.0.0.1:${adminPort})`,
  );
  say(`logs     ${path.relative(root, logsDir)}/`);

  // 6. web -> api through the mesh.
  say('');
  say(`request  GET http://127.0.0.1:${webPort}/call  (web calls api through 127.0.0.1:${apiLocal}, Envoy, mTLS)`);
  const call = await waitFor(
    async () => {
      const r = await getJson(`http://127.0.0.1:${webPort}/call`);
      return r.status === 200 ? r.body : undefined;
    },
    { what: 'web to reach api through the mesh', timeoutMs: 30_000, intervalMs: 250 },
  ).catch((err: Error) => ({ error: err.message }) as Record<string, unknown>);
  const peer = ((call.api ?? {}) as { peer?: string }).peer ?? '';
  const mtlsOk = peer === WEB_ID;
  say(mtlsOk ? `answer   api saw peer ${peer}` : `FAILED   ${JSON.stringify(call)}`);

  // 7. Plaintext to api's mesh port is refused.
  const meshPort = apiMesh;
  const plain = await plaintextRefused(meshPort);
  say(
    plain.refused
      ? `refused  plaintext to api's mesh port 127.0.0.1:${meshPort}: ${plain.how}`
      : `FAILED   plaintext to api's mesh port got an answer: ${plain.how}`,
  );

  // 8. Authorization: only web may call api. probe, a valid identity of the mesh, gets 403.
  say('');
  const probeBefore = await waitFor(
    async () => {
      const r = await fetch(`http://127.0.0.1:${probeLocal}/hello`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      return r?.status === 200 ? r.status : undefined;
    },
    { what: 'probe to reach api before the policy', timeoutMs: 30_000, intervalMs: 250 },
  ).catch(() => 0);
  say(`request  probe -> api before any policy: HTTP ${probeBefore}`);
  const policyFile = path.join(demoDir, 'api-callers.yaml');
  await writeFile(policyFile, AUTHZ_POLICY);
  say(`$ meshctl policy apply -f ${path.relative(root, policyFile)}`);
  const applied = await runToEnd(node, [meshctl, 'policy', 'apply', '--data-dir', cpDir, '-f', policyFile]).catch(
    (err: Error) => err.message,
  );
  process.stdout.write(applied.endsWith('\n') ? applied : `${applied}\n`);
  const probeDenied = await waitFor(
    async () => {
      const r = await fetch(`http://127.0.0.1:${probeLocal}/hello`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      return r?.status === 403 ? r.status : undefined;
    },
    { what: 'the policy to deny probe', timeoutMs: 30_000, intervalMs: 250 },
  ).catch(() => 0);
  say(
    probeDenied === 403
      ? `denied   probe -> api: HTTP 403 (spiffe://${TRUST_DOMAIN}/ns/demo/sa/probe is not allowed by api-callers)`
      : 'FAILED   probe -> api was not denied by the policy',
  );
  const webAfter = await getJson(`http://127.0.0.1:${webPort}/call`).catch(() => ({ status: 0, body: {} }));
  const webAllowed = webAfter.status === 200;
  say(
    webAllowed
      ? 'allowed  web -> api: HTTP 200 (rule web-may-call)'
      : `FAILED   web -> api after the policy: ${JSON.stringify(webAfter.body)}`,
  );

  // 9. The status table.
  say('');
  say('$ mesh-agent status');
  const shown = await runToEnd(node, [agentMain, 'status', '--address', statusAddr]).catch((err: Error) => err.message);
  process.stdout.write(shown.endsWith('\n') ? shown : `${shown}\n`);

  const ok = mtlsOk && plain.refused && probeDenied === 403 && webAllowed;
  if (!ok) reportExited();
  if (check) {
    say(ok ? 'demo check passed' : 'demo check FAILED');
    return ok ? 0 : 1;
  }
  say('');
  say('The mesh is running. Try:');
  say(`  curl -s http://127.0.0.1:${webPort}/call`);
  say(`  curl -si http://127.0.0.1:${probeLocal}/   (probe -> api: 403)`);
  say(`  node dist/controlplane/cli/main.js policy list --data-dir ${path.relative(root, cpDir)}`);
  say(`  node dist/agent/main.js status --address ${statusAddr}`);
  say(`  curl -s http://127.0.0.1:${adminPort}/certs`);
  say('Press Ctrl-C to stop everything and clean up.');
  await untilStopSignal();
  say('\nstopping...');
  return 0;
}

main()
  .then(async (code) => {
    await stopAll();
    // Keep the logs of a failed check; remove everything after a good run.
    if (code === 0) await rm(demoDir, { recursive: true, force: true });
    else if (!netnsDemo) process.stderr.write(`logs kept in ${path.relative(root, logsDir)}/\n`);
    process.exit(code);
  })
  .catch(async (err: Error) => {
    process.stderr.write(`demo: ${err.message}\nlogs kept in ${path.relative(root, logsDir)}/\n`);
    await stopAll();
    process.exit(1);
  });
