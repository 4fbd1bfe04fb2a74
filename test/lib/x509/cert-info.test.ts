import type { X509Certificate } from 'node:crypto';
import t from 'tap';
import { certFields, keyIdentifier, parseCertificates, subjectKeyIdentifier, uriSans } from '../../../lib/x509/cert-info.js';
import { bits, children, ctx, octets, oid, read, seq, set, smallInt, Tag, time, tlv, utf8 } from '../../../lib/x509/der.js';
import { OID } from '../../../lib/x509/oids.js';
import { toPem } from '../../../lib/x509/pem.js';
import { openssl, selfSignedCert } from '../../support/openssl.js';
import { tempDir } from '../../support/temp-dir.js';

t.test('certFields, keyIdentifier and uriSans agree with openssl', async (t) => {
  const dir = await tempDir(t, 'mesh-ci-');
  const { cert: pem, pem: text } = await selfSignedCert(dir, 'c', {
    subject: '/O=Acme/CN=svc',
    days: 3,
    ext: ['subjectKeyIdentifier = hash', 'subjectAltName = DNS:a.example,URI:spiffe://example.org/ns/a/sa/b,URI:https://x.example/y'],
  });
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
  const dir = await tempDir(t, 'mesh-ci-');
  const { pem: text } = await selfSignedCert(dir, 'p', { key: 'ed25519', days: 1, ext: [] });
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
  t.throws(() => certFields(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])), { code: 'MESH_E_CERT_INVALID', message: /tbsCertificate/ });
});

t.test('uriSans reads the GeneralNames DER: a comma inside a URI, URI:-looking text in other name types', async (t) => {
  const dir = await tempDir(t, 'mesh-ci-');
  const { pem } = await selfSignedCert(dir, 'c', {
    subject: '/CN=san',
    key: 'ed25519',
    days: 2,
    ext: ['subjectAltName = @alt', 'subjectKeyIdentifier = 0102030405060708090a0b0c0d0e0f1011121314'],
    sections: {
      alt: [
        'URI.1 = spiffe://example.org/ns/a/sa/b',
        'URI.2 = https://x.example/a,b',
        'DNS.1 = URI:spiffe://evil.example/ns/x',
        'email.1 = URI:spiffe://evil2.example/y',
        'otherName.1 = 1.2.3.4;UTF8:x, URI:spiffe://evil3.example/z',
      ],
    },
  });
  const [cert] = parseCertificates(pem, 'c.pem');
  if (cert === undefined) throw new Error('no cert');
  t.same(uriSans(cert), ['spiffe://example.org/ns/a/sa/b', 'https://x.example/a,b'], 'exactly the two URIs, the comma kept');
  t.same(uriSans(cert.raw), uriSans(cert), 'the same from DER');
  t.notMatch(cert.subjectAltName ?? '', /URI:https:\/\/x\.example\/a,b/, "Node's text rendering escapes the comma (why it is not read)");
  t.same(subjectKeyIdentifier(cert.raw), Buffer.from('0102030405060708090a0b0c0d0e0f1011121314', 'hex'), 'the explicit SKI, as written');
  t.not(
    keyIdentifier(certFields(cert.raw).spki).toString('hex'),
    '0102030405060708090a0b0c0d0e0f1011121314',
    'which is not the SHA-1 of the key',
  );
});

/** A syntactic certificate (unsigned) with the given extensions, for the reader's refusals. */
function fakeCert(extensions: Buffer[]): Buffer {
  const name = seq(set(seq(oid(OID.commonName), utf8('x'))));
  const spki = Buffer.from('302a300506032b6570032100', 'hex');
  const tbs = seq(
    ctx(0, smallInt(2)),
    smallInt(1),
    seq(oid(OID.ed25519)),
    name,
    seq(time(new Date()), time(new Date())),
    name,
    Buffer.concat([spki, Buffer.alloc(32)]),
    ctx(3, seq(...extensions)),
  );
  return seq(tbs, seq(oid(OID.ed25519)), bits(Buffer.alloc(64)));
}

const ext = (id: string, value: Buffer) => seq(oid(id), octets(value));

t.test('extension and SAN refusals are MESH_E_CERT_INVALID', async (t) => {
  const san = (...names: Buffer[]) => ext(OID.subjectAltName, seq(...names));
  t.same(uriSans(fakeCert([san(tlv(0x86, Buffer.from('spiffe://a/b')), tlv(0x82, Buffer.from('x.example')))])), ['spiffe://a/b']);
  t.same(uriSans(fakeCert([])), [], 'no SAN extension');
  t.equal(subjectKeyIdentifier(fakeCert([])), undefined, 'no SKI extension');
  const cases: Array<[string, Buffer, RegExp]> = [
    ['the same extension twice', fakeCert([san(), san()]), /extension 2\.5\.29\.17 appears twice/],
    ['a URI in constructed form', fakeCert([san(tlv(0xa6, tlv(0x16, Buffer.from('spiffe://a/b'))))]), /constructed form/],
    ['a URI that is not ASCII', fakeCert([san(tlv(0x86, Buffer.from('spiffe://a/é')))]), /not IA5/],
    ['a universal tag among GeneralNames', fakeCert([san(tlv(0x16, Buffer.from('spiffe://a/b')))]), /not a GeneralName/],
    ['trailing bytes in the SAN value', fakeCert([ext(OID.subjectAltName, Buffer.concat([seq(), Buffer.from([0])]))]), /trailing bytes/],
  ];
  for (const [what, der, message] of cases) {
    t.throws(() => uriSans(der), { code: 'MESH_E_CERT_INVALID', message }, what);
  }
  t.throws(() => subjectKeyIdentifier(fakeCert([ext(OID.subjectKeyIdentifier, octets(Buffer.alloc(0)))])), {
    code: 'MESH_E_CERT_INVALID',
    message: /subjectKeyIdentifier is empty/,
  });
  t.throws(() => certFields(Buffer.concat([fakeCert([]), Buffer.from([0])])), { code: 'MESH_E_CERT_INVALID', message: /trailing bytes/ });
});
