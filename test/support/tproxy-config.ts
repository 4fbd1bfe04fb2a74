/** An agent config file with transparentProxy on, and two workloads (web :8080, api :9090), for the tproxy tests. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { IptablesBackend } from '../../agent/tproxy/rules.js';

/** `extra`: more keys of transparentProxy as YAML flow (`dns: { capture: true }`); ipv6 defaults to "on". */
export async function agentConfigFile(dir: string, backend: IptablesBackend, extra: string): Promise<string> {
  const workloads = path.join(dir, 'workloads');
  await mkdir(workloads, { recursive: true });
  await writeFile(path.join(workloads, 'web.yaml'), 'name: web\nport: 8080\n');
  await writeFile(path.join(workloads, 'api.yaml'), 'name: api\nport: 9090\n');
  const file = path.join(dir, `agent-${backend}.yaml`);
  await writeFile(
    file,
    [
      'nodeName: tproxy-test',
      `dataDir: ${path.join(dir, 'data')}`,
      `workloadsDir: ${workloads}`,
      'controlPlane: { address: "10.77.0.200:8443" }',
      'envoy: { user: "4242" }',
      `transparentProxy: { enabled: true, backend: ${backend}, ${extra.includes('ipv6') ? '' : 'ipv6: "on", '}${extra} }`,
      '',
    ].join('\n'),
  );
  return file;
}
