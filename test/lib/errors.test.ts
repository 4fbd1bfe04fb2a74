import t from 'tap';
import { ERROR_CODES, isMeshError, MeshError, toMeshError } from '../../lib/errors.js';

t.test('MeshError carries a stable code and frozen details', async (t) => {
  const cause = new Error('disk full');
  const err = new MeshError('MESH_E_CONFIG_INVALID', 'bad field', { details: { file: 'a.yaml', path: 'port' }, cause });
  t.equal(err.code, 'MESH_E_CONFIG_INVALID');
  t.equal(err.name, 'MeshError');
  t.equal(err.cause, cause);
  t.ok(Object.isFrozen(err.details));
  t.same(JSON.parse(JSON.stringify(err)), {
    code: 'MESH_E_CONFIG_INVALID',
    message: 'bad field',
    details: { file: 'a.yaml', path: 'port' },
  });
  t.ok(isMeshError(err));
  t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'));
  t.notOk(isMeshError(err, 'MESH_E_USAGE'));
  t.notOk(isMeshError(new Error('x')));
  t.same(new MeshError('MESH_E_USAGE', 'x').details, {});
});

t.test('every code is MESH_E_ prefixed and described', async (t) => {
  for (const [code, text] of Object.entries(ERROR_CODES)) {
    t.match(code, /^MESH_E_[A-Z_]+$/);
    t.ok(text.length > 10, `${code} has a description`);
  }
});

t.test('toMeshError keeps codes and wraps the rest', async (t) => {
  const original = new MeshError('MESH_E_USAGE', 'x');
  t.equal(toMeshError(original), original);
  const wrapped = toMeshError(new Error('boom'));
  t.equal(wrapped.code, 'MESH_E_INTERNAL');
  t.equal(wrapped.message, 'boom');
  t.equal(toMeshError('text', 'MESH_E_NETNS').code, 'MESH_E_NETNS');
});
