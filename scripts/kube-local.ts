/**
 * A Kubernetes API server on loopback, for the tests of the Kubernetes side and
 * for `npm run demo -- --k8s`: the provisioned etcd and kube-apiserver
 * (provision-kube.ts), a self-signed serving certificate for 127.0.0.1, a
 * static admin token, service-account signing keys (TokenRequest and
 * TokenReview work), RBAC, no controller manager (Services get no
 * EndpointSlices and namespaces no `default` ServiceAccount: whoever needs
 * them writes them) and no admission webhooks. Ready when /readyz answers ok.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { freePorts } from '../lib/ports.js';
import { waitFor } from '../lib/wait.js';
import { x509 } from '../lib/x509/peculiar.js';
import { toPem } from '../lib/x509/pem.js';
import type { KubeTools } from './provision-kube.js';

export interface LocalKubePorts {
  readonly apiserver: number;
  readonly etcdClient: number;
  readonly etcdPeer: number;
}

export interface LocalKube {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** The API server's serving certificate (PEM): the CA to trust. */
  readonly caPem: string;
  /** A bearer token of system:masters. */
  readonly token: string;
  /** A kubeconfig file for url, caPem and token. */
  readonly kubeconfig: string;
  /** The issuer of service-account tokens. */
  readonly issuer: string;
  readonly ports: LocalKubePorts;
  readonly dir: string;
  /** The API server's pid (tests restart it). */
  apiserverPid(): number | undefined;
  /** Stops the API server only (etcd keeps the objects), for a restart. */
  stopApiserver(): Promise<void>;
  /** Starts the API server again on the same port, with the same keys and etcd. */
  startApiserver(): Promise<void>;
  /** Both processes' output so far (for a failing test's log). */
  output(): string;
  stop(): Promise<void>;
}

export interface LocalKubeOptions {
  readonly tools: KubeTools;
  /** A folder of its own: etcd data, keys, logs. */
  readonly dir: string;
  readonly ports?: LocalKubePorts;
  readonly readyTimeoutMs?: number;
  readonly progress?: (line: string) => void;
}

const ISSUER = 'https://kubernetes.default.svc.cluster.local';

async function selfSignedServing(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: 'CN=kube-apiserver',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 7 * 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = toPem(pkcs8, 'PRIVATE KEY');
  return { certPem: cert.toString('pem'), keyPem };
}

export function kubeconfigYaml(url: string, caPem: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: local\n  cluster:\n    server: ${url}\n    certificate-authority-data: ${ca}`,
    'users:',
    `- name: admin\n  user:\n    token: ${token}`,
    'contexts:',
    '- name: local\n  context:\n    cluster: local\n    user: admin',
    'current-context: local',
    '',
  ].join('\n');
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
}

function launch(command: string, args: string[], logFile: string, sink: (chunk: string) => void): Proc {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile, { flags: 'a' });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      sink(chunk.toString());
    });
  }
  const exited = new Promise<void>((resolve) => {
    child.on('close', () => {
      log.end();
      resolve();
    });
    child.on('error', () => resolve());
  });
  return { child, exited };
}

async function terminate(proc: Proc | undefined, timeoutMs = 15_000): Promise<void> {
  if (proc === undefined || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  await proc.exited;
  clearTimeout(timer);
}

/** GET path on the API server with the token; the status code and body (undefined when it does not answer). */
function apiGet(url: string, caPem: string, token: string, apiPath: string): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = https.get(`${url}${apiPath}`, { ca: caPem, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

export async function startLocalKube(options: LocalKubeOptions): Promise<LocalKube> {
  const { dir, tools } = options;
  const progress = options.progress ?? (() => {});
  await mkdir(dir, { recursive: true });
  const [apiserver, etcdClient, etcdPeer] = options.ports
    ? [options.ports.apiserver, options.ports.etcdClient, options.ports.etcdPeer]
    : ((await freePorts(3)) as [number, number, number]);
  const ports = { apiserver, etcdClient, etcdPeer };
  const url = `https://127.0.0.1:${apiserver}`;
  const token = randomBytes(24).toString('hex');

  const serving = await selfSignedServing();
  const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const file = (name: string) => path.join(dir, name);
  await writeFile(file('serving.crt'), serving.certPem);
  await writeFile(file('serving.key'), serving.keyPem, { mode: 0o600 });
  await writeFile(file('sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  await writeFile(file('sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  await writeFile(file('tokens.csv'), `${token},mesh-test-admin,mesh-test-admin,"system:masters"\n`, { mode: 0o600 });
  const kubeconfig = file('kubeconfig');
  await writeFile(kubeconfig, kubeconfigYaml(url, serving.certPem, token), { mode: 0o600 });

  let out = '';
  const sink = (chunk: string) => {
    out = (out + chunk).slice(-200_000);
  };
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const peerUrl = `http://127.0.0.1:${etcdPeer}`;
  const etcd = launch(
    tools.etcd.path,
    [
      '--name=mesh-test',
      `--data-dir=${file('etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=mesh-test=${peerUrl}`,
      '--log-level=warn',
      '--quota-backend-bytes=1073741824',
    ],
    file('etcd.log'),
    sink,
  );

  const apiserverArgs = [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiserver}`,
    `--tls-cert-file=${file('serving.crt')}`,
    `--tls-private-key-file=${file('serving.key')}`,
    `--token-auth-file=${file('tokens.csv')}`,
    `--service-account-key-file=${file('sa.pub')}`,
    `--service-account-signing-key-file=${file('sa.key')}`,
    `--service-account-issuer=${ISSUER}`,
    '--authorization-mode=RBAC',
    '--endpoint-reconciler-type=none',
    '--service-cluster-ip-range=10.96.0.0/16',
    '--disable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy',
    '--profiling=false',
    `--cert-dir=${file('certs')}`,
    '-v=0',
  ];
  let api: Proc | undefined;
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
  const startApiserver = async () => {
    api = launch(tools.kubeApiserver.path, apiserverArgs, file('kube-apiserver.log'), sink);
    const current = api;
    await waitFor(async () => ((await apiGet(url, serving.certPem, token, '/readyz'))?.status === 200 ? true : undefined), {
      timeoutMs: readyTimeoutMs,
      intervalMs: 250,
      what: `kube-apiserver on ${url} to be ready`,
      fatal: () =>
        current.child.exitCode === null ? undefined : `kube-apiserver exited with ${current.child.exitCode}:\n${out.slice(-3000)}`,
    });
  };
  const stop = async () => {
    await terminate(api);
    await terminate(etcd);
  };
  try {
    progress(`kube-apiserver: starting on ${url} with etcd on ${etcdUrl}`);
    await startApiserver();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    caPem: serving.certPem,
    token,
    kubeconfig,
    issuer: ISSUER,
    ports,
    dir,
    apiserverPid: () => api?.child.pid,
    stopApiserver: () => terminate(api),
    startApiserver,
    output: () => out,
    stop,
  };
}
