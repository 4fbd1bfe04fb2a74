import type { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run } from '../../../lib/exec.js';
import { certFields, keyIdentifier, parseCertificates, uriSans } from '../../../lib/x509/cert-info.js';
import { children, read, Tag } from '../../../lib/x509/der.js';
import { toPem } from '../../../lib/x509/pem.js';

async function openssl(args: string[]) {
  const r = await run('openssl', args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

t.test('certFields, keyIdentifier and uriSans agree with openssl', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-ci-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pem = path.join(dir, 'c.pem');
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    path.join(dir, 'c.key'),
    '-out',
    pem,
    '-days',
    '3',
    '-subj',
    '/O=Acme/CN=svc',
    '-addext',
    'subjectKeyIdentifier=hash',
    '-addext',
    'subjectAltName=DNS:a.example,URI:spiffe://example.org/ns/a/sa/b,URI:https://x.example/y',
  ]);
  const text = await readFile(pem, 'utf8');
  const [cert] = parseCertificates(text, 'c.pem');
  if (cert === undefined) throw new Error('no cert');

  const fields = certFields(cert.raw);
  t.same(fields.spki, cert.publicKey.export({ type: 'spki', format: 'der' }), 'the SubjectPublicKeyInfo');
  const rdns = children(read(fields.subject));
  t.equal(rdns.length, 2);
  t.equal(
    rdns.every((r) => r.tag === Tag.SET),
    true,
  );
  t.ok(fields.subject.includes(Buffer.from('svc')) && fields.subject.includes(Buffer.from('Acme')));
  t.equal(cert.subject, 'O=Acme\nCN=svc');

  const ski = (await openssl(['x509', '-in', pem, '-noout', '-ext', 'subjectKeyIdentifier'])).split('\n')[1]?.trim();
  t.equal(keyIdentifier(fields.spki).toString('hex').toUpperCase().match(/../g)?.join(':'), ski, 'method 1 key identifier, as openssl');

  t.same(uriSans(cert), ['spiffe://example.org/ns/a/sa/b', 'https://x.example/y']);
});

t.test('uriSans of a certificate without SANs, and parseCertificates errors', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-ci-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pem = path.join(dir, 'p.pem');
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ed25519',
    '-nodes',
    '-keyout',
    path.join(dir, 'p.key'),
    '-out',
    pem,
    '-days',
    '1',
    '-subj',
    '/CN=p',
  ]);
  const text = await readFile(pem, 'utf8');
  const [cert] = parseCertificates(text, 'p.pem');
  t.same(uriSans(cert as X509Certificate), []);
  t.equal(certFields((cert as X509Certificate).raw).spki.length, 44, 'an Ed25519 SPKI');

  const two = parseCertificates(text + text, 'two');
  t.equal(two.length, 2);
  t.throws(() => parseCertificates('no pem', 'the bundle'), { code: 'MESH_E_CERT_INVALID', message: 'the bundle holds no certificate' });
  t.throws(() => parseCertificates(text + toPem(Buffer.from('garbage')), 'the chain'), {
    code: 'MESH_E_CERT_INVALID',
    message: /^the chain: certificate 2 cannot be parsed/,
  });
  t.throws(() => certFields(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])), /tbsCertificate/);
});
