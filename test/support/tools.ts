/**
 * The provisioned Envoy and Consul binaries for tests and benchmarks. The first
 * call provisions (a no-op in seconds when the cache is warm; the same code as
 * `npm run provision`), later calls reuse the answer.
 */
import { defaultCacheDir, type Provisioned, provision, type ToolInfo } from '../../scripts/provision.js';
import { type KubeTools, provisionKube } from '../../scripts/provision-kube.js';
import { type PrometheusTools, provisionPrometheus } from '../../scripts/provision-prometheus.js';
import { provisionDebianRootfs } from '../../scripts/provision-rootfs.js';
import { provisionZipkin } from '../../scripts/provision-zipkin.js';
import { repoRoot } from '../../scripts/repo-root.js';

let pending: Promise<Provisioned> | undefined;

export function tools(): Promise<Provisioned> {
  if (pending === undefined) {
    const root = repoRoot();
    pending = provision({
      root,
      cacheDir: defaultCacheDir(process.env),
      progress: (line) => process.stderr.write(`# provision: ${line}\n`),
    });
  }
  return pending;
}

let rootfs: Promise<ToolInfo> | undefined;

/** The cached Debian bookworm rootfs archive for test/support/nspawn.ts; built on first use (about 70 s, needs root). */
export function debianRootfs(): Promise<ToolInfo> {
  rootfs ??= provisionDebianRootfs({
    cacheDir: defaultCacheDir(process.env),
    progress: (line) => process.stderr.write(`# provision: ${line}\n`),
  });
  return rootfs;
}

let prom: Promise<PrometheusTools> | undefined;

/** Prometheus and promtool (Debian's package, unpacked into the cache; scripts/provision-prometheus.ts). */
export function prometheusTools(): Promise<PrometheusTools> {
  prom ??= provisionPrometheus({
    cacheDir: defaultCacheDir(process.env),
    progress: (line) => process.stderr.write(`# provision: ${line}\n`),
  });
  return prom;
}

let zipkinJar: Promise<ToolInfo> | undefined;

/** The cached Zipkin server exec jar (scripts/provision-zipkin.ts); downloaded from Maven Central and checked on first use. */
export function zipkin(): Promise<ToolInfo> {
  zipkinJar ??= provisionZipkin({
    cacheDir: defaultCacheDir(process.env),
    progress: (line) => process.stderr.write(`# provision: ${line}\n`),
  });
  return zipkinJar;
}

let kube: Promise<KubeTools> | undefined;

/** kube-apiserver and etcd, built from their Go modules into the cache on first use (scripts/provision-kube.ts). */
export function kubeTools(): Promise<KubeTools> {
  kube ??= provisionKube({
    root: repoRoot(),
    cacheDir: defaultCacheDir(process.env),
    progress: (line) => process.stderr.write(`# provision: ${line}\n`),
  });
  return kube;
}
