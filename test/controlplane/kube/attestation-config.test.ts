/** kubernetes.attestation of controlplane.yaml: defaults, and errors that name the field. */
import t from 'tap';
import { controlplaneSchema } from '../../../controlplane/config/schema.js';
import { validateConfig } from '../../../lib/config-file.js';

const base = { dataDir: '/tmp/x', trustDomain: 'example.org' };
const parse = (attestation: unknown) => validateConfig(controlplaneSchema, { ...base, kubernetes: { attestation } }, 'cp.yaml');

t.test('defaults', async (t) => {
  const config = parse({ allow: [{ namespace: 'shop' }] });
  t.same(config.kubernetes?.attestation, {
    allow: [{ namespace: 'shop', serviceAccount: '*' }],
    nodePrefix: 'k8s',
    nodeSvidTtl: 3600_000,
    timeout: 5_000,
  });
  t.equal(config.kubernetes?.cluster, 'kubernetes');
  t.equal(parse({ allow: [{ namespace: '*' }], audience: 'mesh', nodeSvidTtl: '10m' }).kubernetes?.attestation?.audience, 'mesh');
});

t.test('bad values are refused with the field path', async (t) => {
  t.throws(() => parse({ allow: [] }), { code: 'MESH_E_CONFIG_INVALID', message: /kubernetes\.attestation\.allow/ });
  t.throws(() => parse({}), { code: 'MESH_E_CONFIG_INVALID', message: /kubernetes\.attestation\.allow/ });
  t.throws(() => parse({ allow: [{ namespace: 'Shop' }] }), { code: 'MESH_E_CONFIG_INVALID', message: /allow\[0\]\.namespace/ });
  t.throws(() => parse({ allow: [{ namespace: 'a', serviceAccount: 'b/c' }] }), { message: /allow\[0\]\.serviceAccount/ });
  t.throws(() => parse({ allow: [{ namespace: 'a' }], nodePrefix: 'k8s.x' }), { message: /nodePrefix/ });
  t.throws(() => parse({ allow: [{ namespace: 'a' }], extra: 1 }), { message: /extra/ }, 'unknown keys are refused');
});
