/**
 * Provisions Prometheus and promtool for the metrics test, into the same cache
 * and under the same lock as the other test peers (provision.ts): Debian's
 * `prometheus` package at a pinned version, fetched with `apt-get download`
 * (apt checks it against the signed archive), its SHA-256 checked again
 * against the one pinned here, and unpacked with `dpkg-deb -x` (installing it
 * would start a system service) into `prometheus-<version>`, which then holds
 * usr/bin/prometheus and usr/bin/promtool. A folder that exists is reused when
 * its prometheus answers --version with the pin, so a warm cache needs no
 * network. The package must be in apt's lists: `apt-get update` once on a
 * fresh machine (.ci/run does).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { MeshError, toMeshError } from '../lib/errors.js';
import { runChecked } from '../lib/exec.js';
import { type ProvisionOptions, requireTool, stageInto, type ToolInfo, underProvisionLock, versionOf } from './provision.js';

/** Debian bookworm's prometheus (2.42.0) and the SHA-256 its Packages index gives the .deb. */
export const PROMETHEUS_DEB_VERSION = '2.42.0+ds-5+deb12u1';
export const PROMETHEUS_DEB_SHA256 = '81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55';

export interface PrometheusTools {
  /** The prometheus server; version is its --version revision (the Debian version). */
  readonly prometheus: ToolInfo;
  readonly promtool: ToolInfo;
}

/** `prometheus --version` prints "prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)". */
export function parsePrometheusVersion(output: string): string | undefined {
  return /^(?:prometheus|promtool), version \S+ \(branch: [^,]*, revision: ([^)]+)\)/m.exec(output)?.[1];
}

export async function provisionPrometheus(options: Pick<ProvisionOptions, 'cacheDir' | 'progress'>): Promise<PrometheusTools> {
  return underProvisionLock(options, async (progress) => {
    const dir = path.join(options.cacheDir, `prometheus-${PROMETHEUS_DEB_VERSION}`);
    const bin = (name: string) => path.join(dir, 'usr', 'bin', name);
    if ((await versionOf(bin('prometheus'), parsePrometheusVersion)) !== PROMETHEUS_DEB_VERSION) {
      await requireTool('apt-get', 'Prometheus comes from the Debian archive: run on Debian/Ubuntu with apt');
      progress(`prometheus: apt-get download prometheus=${PROMETHEUS_DEB_VERSION}, unpacked into ${dir}`);
      await stageInto(dir, async (staging) => {
        const download = `${staging}-deb`;
        await mkdir(download, { recursive: true });
        await mkdir(staging, { recursive: true });
        try {
          await runChecked('apt-get', ['download', `prometheus=${PROMETHEUS_DEB_VERSION}`], 'MESH_E_PROVISION_FAILED', {
            cwd: download,
            timeoutMs: 10 * 60_000,
          }).catch((err: unknown) => {
            const e = toMeshError(err, 'MESH_E_PROVISION_FAILED');
            throw new MeshError(
              'MESH_E_PROVISION_FAILED',
              `apt-get download prometheus=${PROMETHEUS_DEB_VERSION} failed (is Debian bookworm's archive in apt's sources, and did apt-get update run?): ${e.message}`,
              { cause: err },
            );
          });
          const [deb] = (await readdir(download)).filter((f) => f.endsWith('.deb'));
          if (deb === undefined) throw new MeshError('MESH_E_PROVISION_FAILED', 'apt-get download prometheus left no .deb');
          const sha = createHash('sha256')
            .update(await readFile(path.join(download, deb)))
            .digest('hex');
          if (sha !== PROMETHEUS_DEB_SHA256)
            throw new MeshError('MESH_E_PROVISION_FAILED', `${deb}: SHA-256 ${sha}, expected ${PROMETHEUS_DEB_SHA256}`);
          await runChecked('dpkg-deb', ['-x', path.join(download, deb), staging], 'MESH_E_PROVISION_FAILED', { timeoutMs: 5 * 60_000 });
        } finally {
          await rm(download, { recursive: true, force: true });
        }
      });
    }
    const tools: Record<'prometheus' | 'promtool', ToolInfo> = {
      prometheus: { path: '', version: '' },
      promtool: { path: '', version: '' },
    };
    for (const name of ['prometheus', 'promtool'] as const) {
      const version = await versionOf(bin(name), parsePrometheusVersion);
      if (version !== PROMETHEUS_DEB_VERSION)
        throw new MeshError(
          'MESH_E_PROVISION_FAILED',
          `${name} at ${bin(name)} reports version ${version ?? 'nothing'}, expected ${PROMETHEUS_DEB_VERSION}`,
        );
      tools[name] = { path: bin(name), version };
    }
    return Object.freeze(tools);
  });
}
