import t from 'tap';
import { fromPem, fromPemAll, toPem } from '../../../lib/x509/pem.js';

t.test('toPem wraps base64 at 64 columns and round-trips', async (t) => {
  const der = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
  const pem = toPem(der);
  const lines = pem.trimEnd().split('\n');
  t.equal(lines[0], '-----BEGIN CERTIFICATE-----');
  t.equal(lines.at(-1), '-----END CERTIFICATE-----');
  t.same(
    lines.slice(1, -1).map((l) => l.length),
    [64, 64, 64, 64, 12],
    '268 base64 characters',
  );
  t.ok(pem.endsWith('-----END CERTIFICATE-----\n'));
  t.same(fromPem(pem), der);
  t.equal(toPem(Buffer.from('hi'), 'PRIVATE KEY'), '-----BEGIN PRIVATE KEY-----\naGk=\n-----END PRIVATE KEY-----\n');
});

t.test('fromPemAll: every block of the label, in order, ignoring other labels and text', async (t) => {
  const a = Buffer.from('first');
  const b = Buffer.from('second block');
  const text = `subject=CN=x\n${toPem(a)}junk in between\n${toPem(Buffer.from('key'), 'PRIVATE KEY')}\r\n${toPem(b).replace(/\n/g, '\r\n')}`;
  t.same(fromPemAll(text), [a, b]);
  t.same(fromPemAll(text, 'PRIVATE KEY'), [Buffer.from('key')]);
  t.same(fromPemAll('nothing here'), []);
});

t.test('fromPem with no block of the label: MESH_E_CERT_INVALID naming it', async (t) => {
  t.throws(() => fromPem('-----BEGIN PRIVATE KEY-----\naGk=\n-----END PRIVATE KEY-----\n', 'CERTIFICATE', 'the bundle'), {
    code: 'MESH_E_CERT_INVALID',
    message: 'the bundle holds no "CERTIFICATE" PEM block',
    details: { label: 'CERTIFICATE' },
  });
  t.throws(() => fromPem(''), { code: 'MESH_E_CERT_INVALID' });
});
