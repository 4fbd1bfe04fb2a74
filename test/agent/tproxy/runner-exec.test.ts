import t from 'tap';
import { createIptablesRunner, detectBackend, programName } from '../../../agent/tproxy/runner-exec.js';
import { isMeshError } from '../../../lib/errors.js';

/** Programs run through `env PATH=<empty>`: every iptables program is missing, nothing is touched. */
const NO_PATH = { commandPrefix: ['env', 'PATH=/nonexistent-mesh-test'] };

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  return p.then(
    () => ({ message: 'no error' }),
    (err: unknown) => (isMeshError(err) ? { code: err.code, message: err.message } : { message: String(err) }),
  );
}

t.test('program names per backend and family', async (t) => {
  t.equal(programName('nft', 'ipv4', 'save'), 'iptables-nft-save');
  t.equal(programName('legacy', 'ipv6', 'restore'), 'ip6tables-legacy-restore');
});

t.test('missing programs are MESH_E_TPROXY_NO_IPTABLES naming them', async (t) => {
  const auto = await errorOf(detectBackend('auto', NO_PATH));
  t.equal(auto.code, 'MESH_E_TPROXY_NO_IPTABLES');
  t.match(auto.message, /iptables-nft-save, iptables-nft-restore, iptables-legacy-save, iptables-legacy-restore not found/);
  const legacy = await errorOf(detectBackend('legacy', NO_PATH));
  t.match(legacy.message, /^iptables-legacy-save, iptables-legacy-restore not found: install/);
  const runner = createIptablesRunner('nft', NO_PATH);
  t.equal((await errorOf(runner.save('ipv6', 'nat'))).code, 'MESH_E_TPROXY_NO_IPTABLES');
  t.match((await errorOf(runner.restore('ipv4', '*nat\nCOMMIT\n'))).message, /^iptables-nft-restore not found/);
});
