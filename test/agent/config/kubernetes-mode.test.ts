/** agent.yaml `kubernetes`: defaults, and the fields kubernetes mode needs because there is no join. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { loadAgentConfig } from '../../../agent/config/load.js';
import { tempDir } from '../../support/temp-dir.js';

const deps = { hostname: async () => 'host-a', joinedTrustDomain: async () => undefined };
const dir = await tempDir(t, 'agent-kube-config-');
let n = 0;
async function load(config: unknown) {
  n += 1;
  const file = path.join(dir, `agent-${n}.json`);
  await writeFile(file, JSON.stringify(config));
  return loadAgentConfig(file, deps);
}
const needed = { trustDomain: 'example.org', controlPlane: { address: 'cp.example:8443' } };

t.test('sidecar by default, with the conventional token path', async (t) => {
  const config = await load({ ...needed, kubernetes: {} });
  t.same(config.kubernetes, { mode: 'sidecar', tokenFiles: ['/var/run/secrets/mesh/token'] });
  const perNode = await load({ ...needed, kubernetes: { mode: 'per-node', tokenFiles: ['/a', '/b'] } });
  t.same(perNode.kubernetes?.tokenFiles, ['/a', '/b']);
  t.equal((await load({})).kubernetes, undefined, 'absent: a host that joins');
});

t.test('refusals name the field', async (t) => {
  await t.rejects(load({ controlPlane: { address: 'cp:8443' }, kubernetes: {} }), {
    code: 'MESH_E_CONFIG_INVALID',
    message: /kubernetes mode needs trustDomain/,
  });
  await t.rejects(load({ trustDomain: 'example.org', kubernetes: {} }), {
    code: 'MESH_E_CONFIG_INVALID',
    message: /controlPlane\.address/,
  });
  await t.rejects(load({ ...needed, kubernetes: { tokenFiles: ['/a', '/b'] } }), {
    code: 'MESH_E_CONFIG_INVALID',
    message: /kubernetes\.tokenFiles.*exactly one/s,
  });
  await t.rejects(load({ ...needed, kubernetes: { mode: 'daemon' } }), { code: 'MESH_E_CONFIG_INVALID', message: /kubernetes\.mode/ });
});
