import t from 'tap';
import { controlplaneSchema } from '../../../controlplane/config/schema.js';
import { validateConfig } from '../../../lib/config-file.js';

const base = { dataDir: '/var/lib/mesh', trustDomain: 'example.org' };

t.test('kubernetes.sync: defaults', async (t) => {
  const config = validateConfig(controlplaneSchema, { ...base, kubernetes: { sync: {} } }, 'controlplane.yaml');
  t.same(config.kubernetes?.sync, {
    consul: { address: '127.0.0.1:8500', token: '', datacenter: '' },
    toConsul: { enabled: true, namespaces: [], nodeAddress: '127.0.0.1', meshPortName: 'mesh' },
    resync: 10_000,
  });
  t.equal(config.kubernetes?.cluster, 'kubernetes');
});

t.test('kubernetes.sync: bad values name the file and the field', async (t) => {
  t.throws(() => validateConfig(controlplaneSchema, { ...base, kubernetes: { sync: { toConsul: { namespaces: ['Shop'] } } } }, 'cp.yaml'), {
    code: 'MESH_E_CONFIG_INVALID',
    message: /cp\.yaml.*\n.*kubernetes\.sync\.toConsul\.namespaces\[0\]/,
  });
  t.throws(() => validateConfig(controlplaneSchema, { ...base, kubernetes: { sync: { fromConsul: {} } } }, 'cp.yaml'), {
    message: /kubernetes\.sync\.fromConsul\.namespace/,
  });
  t.throws(() => validateConfig(controlplaneSchema, { ...base, kubernetes: { sync: { consul: { address: 'nohost' } } } }, 'cp.yaml'), {
    message: /kubernetes\.sync\.consul\.address.*HOST:PORT/,
  });
  t.throws(() => validateConfig(controlplaneSchema, { ...base, kubernetes: { sync: { surprise: 1 } } }, 'cp.yaml'), {
    message: /surprise/,
  });
});
