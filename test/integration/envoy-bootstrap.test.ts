/**
 * The real Envoy accepts the agent's bootstrap, and with nothing answering on
 * the ADS socket it stays initializing: it serves no partial configuration.
 */
import path from 'node:path';
import t from 'tap';
import { buildBootstrap } from '../../agent/envoy/bootstrap.js';
import { startEnvoy } from '../support/envoy.js';
import { tempDir } from '../support/temp-dir.js';
import { httpGet } from '../support/wait.js';

t.setTimeout(120_000);

for (const api of ['sotw', 'delta'] as const) {
  t.test(`Envoy starts from the ${api} bootstrap and waits for its first config`, async (t) => {
    // A short folder: a Unix socket path must fit in 108 bytes.
    const dir = await tempDir(t, 'mesh-ads-');
    const bootstrap = buildBootstrap({ nodeName: `vm-${api}`, adminPort: 0, adsSocket: path.join(dir, 'ads.sock'), api, accessLog: true });
    const envoy = await startEnvoy({ bootstrap, waitLive: false });
    t.teardown(() => envoy.stop());
    const info = JSON.parse(await envoy.admin('/server_info')) as { state: string; node: { id: string } };
    t.equal(info.node.id, `vm-${api}`);
    t.not(info.state, 'LIVE', `not live without its first config (state ${info.state})`);
    const ready = await httpGet(`${envoy.adminUrl}/ready`);
    t.equal(ready.status, 503, '/ready is 503 while waiting');
    const dump = await envoy.configDump();
    const listeners = dump.configs.find((c) => c['@type'].endsWith('ListenersConfigDump')) as { dynamic_listeners?: unknown[] } | undefined;
    t.same(listeners?.dynamic_listeners ?? [], [], 'no listener is served');
  });
}
