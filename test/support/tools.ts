/**
 * The provisioned Envoy and Consul binaries for tests and benchmarks. The first
 * call provisions (a no-op in seconds when the cache is warm; the same code as
 * `npm run provision`), later calls reuse the answer.
 */
import { defaultCacheDir, type Provisioned, provision } from '../../scripts/provision.js';
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
