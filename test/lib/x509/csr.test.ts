import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { newKeyPair } from '../../../lib/secret-files.js';
import { parseCsr, signatureAlgorithmFor } from '../../../lib/x509/csr.js';
import { createCsr } from '../../../lib/x509/csr-builder.js';
import { bits, children, ctx, decodeOid, octets, oid, read, seq, set, smallInt, Tag, tlv } from '../../../lib/x509/der.js';
import { OID } from '../../../lib/x509/oids.js';
import { toPem } from '../../../lib/x509/pem.js';
import { keyTypeOf, publicKeyFromSpki } from '../../../lib/x509/spki.js';
import { openssl, opensslRun } from '../../support/openssl.js';
import { tempDir } from '../../support/temp-dir.js';

const ed = () => generateKeyPairSync('ed25519');

t.test('createCsr / parseCsr round trip for P-256 and Ed25519', async (t) => {
  for (const [type, pair] of [
    ['ec-p256', newKeyPair()],
    ['ed25519', ed()],
  ] as const) {
    const csr = await createCsr(pair.privateKey, pair.publicKey);
    const parsed = parseCsr(csr);
    t.equal(parsed.keyType, type);
    t.same(parsed.spki, pair.publicKey.export({ type: 'spki', format: 'der' }), `${type}: the SPKI is the key's`);
    t.ok(parsed.publicKey.equals(pair.publicKey));
    const [, alg] = children(read(csr));
    t.equal(
      decodeOid(children(alg as ReturnType<typeof read>)[0] as ReturnType<typeof read>),
      type === 'ed25519' ? OID.ed25519 : OID.ecdsaWithSha256,
    );
    t.ok(parseCsr(await createCsr(pair.privateKey, pair.publicKey, 'vm1.example')).publicKey.equals(pair.publicKey), 'with a common name');
  }
});

t.test('openssl agrees that our CSRs are well formed and self-signed', async (t) => {
  const dir = await tempDir(t, 'mesh-csr-');
  for (const [name, pair] of [
    ['p256', newKeyPair()],
    ['ed25519', ed()],
  ] as const) {
    const file = path.join(dir, `${name}.csr`);
    await writeFile(file, toPem(await createCsr(pair.privateKey, pair.publicKey, 'cn-check'), 'CERTIFICATE REQUEST'));
    const r = await opensslRun(['req', '-in', file, '-noout', '-verify', '-subject']);
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    t.match(r.stdout + r.stderr, /verify OK/i);
    t.match(r.stdout, /CN ?= ?cn-check/);
  }
});

t.test('the request info is the bytes @peculiar/x509 wrote (the builder before this one), up to the signature', async (t) => {
  const { derOf, webKeyPair, x509 } = await import('../../../lib/x509/peculiar.js');
  for (const [name, pair] of [
    ['p256', newKeyPair()],
    ['ed25519', ed()],
  ] as const) {
    for (const commonName of [undefined, 'istio intermediate CA', 'vm_1 é']) {
      const keys = await webKeyPair(pair.privateKey, pair.publicKey);
      const theirs = derOf(
        await x509.Pkcs10CertificateRequestGenerator.create({
          keys,
          signingAlgorithm: keys.signingAlgorithm,
          ...(commonName === undefined ? {} : { name: [{ '2.5.4.3': [commonName] }] }),
        }),
      );
      const ours = createCsr(pair.privateKey, pair.publicKey, commonName);
      const [theirInfo, theirAlg] = children(read(theirs));
      const [ourInfo, ourAlg] = children(read(ours));
      t.same(ourInfo?.raw, theirInfo?.raw, `${name}, CN ${commonName ?? 'none'}: certificationRequestInfo`);
      t.same(ourAlg?.raw, theirAlg?.raw, `${name}, CN ${commonName ?? 'none'}: signatureAlgorithm`);
      t.ok(await new x509.Pkcs10CertificateRequest(ours).verify(), `${name}: @peculiar/x509 verifies our signature`);
    }
  }
});

t.test('parseCsr refuses trailing bytes, a mismatched algorithm OID and a bad signature', async (t) => {
  const p = newKeyPair();
  const good = await createCsr(p.privateKey, p.publicKey);
  t.throws(() => parseCsr(Buffer.concat([good, Buffer.from([0])])), {
    code: 'MESH_E_CSR_INVALID',
    message: /trailing bytes after the CSR/,
  });

  // Ed25519 key, ECDSA algorithm OID (and the other way round).
  const e = ed();
  const edInfo = children(read(await createCsr(e.privateKey, e.publicKey)))[0]?.raw as Buffer;
  const mislabeled = seq(edInfo, seq(oid(OID.ecdsaWithSha256)), bits(sign(null, edInfo, e.privateKey)));
  t.throws(() => parseCsr(mislabeled), {
    code: 'MESH_E_CSR_INVALID',
    message: new RegExp(`signature algorithm ${OID.ecdsaWithSha256.replace(/\./g, '\\.')} does not match the ed25519 key`),
  });
  const ecInfo = children(read(good))[0]?.raw as Buffer;
  const mislabeled2 = seq(ecInfo, seq(oid(OID.ed25519)), bits(sign('sha256', ecInfo, { key: p.privateKey, dsaEncoding: 'der' })));
  t.throws(() => parseCsr(mislabeled2), { code: 'MESH_E_CSR_INVALID', message: /does not match the ec-p256 key/ });

  // Signed by another key.
  const other = newKeyPair();
  const forged = seq(ecInfo, seq(oid(OID.ecdsaWithSha256)), bits(sign('sha256', ecInfo, { key: other.privateKey, dsaEncoding: 'der' })));
  t.throws(() => parseCsr(forged), { code: 'MESH_E_CSR_INVALID', message: /does not verify/ });

  t.throws(() => parseCsr(Buffer.from([1, 2, 3])), { code: 'MESH_E_CSR_INVALID', message: /truncated DER/ });
  t.throws(() => parseCsr(seq(oid('1.2.3'))), { code: 'MESH_E_CSR_INVALID', message: /expected info, algorithm and signature/ });
  t.throws(() => parseCsr(good.subarray(0, good.length - 5)), { code: 'MESH_E_CSR_INVALID' });
});

t.test('only P-256 and Ed25519 keys are accepted', async (t) => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  t.equal(keyTypeOf(p384.publicKey), undefined);
  t.throws(() => signatureAlgorithmFor(p384.privateKey), { code: 'MESH_E_KEY_UNSUPPORTED' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaCsr = await createCsr(rsa.privateKey, rsa.publicKey);
  t.throws(() => parseCsr(rsaCsr), {
    code: 'MESH_E_KEY_UNSUPPORTED',
    message: /key type rsa is not accepted; use ECDSA P-256 or Ed25519/,
  });
  // A P-384 key in a CSR labelled as ECDSA-with-SHA256.
  const info = children(read(await createCsr(newKeyPair().privateKey, newKeyPair().publicKey)))[0]?.raw as Buffer;
  const spki384 = p384.publicKey.export({ type: 'spki', format: 'der' });
  const infoNodes = children(read(info));
  const info384 = seq(infoNodes[0]?.raw as Buffer, infoNodes[1]?.raw as Buffer, spki384, infoNodes[3]?.raw as Buffer);
  const csr384 = seq(info384, seq(oid(OID.ecdsaWithSha256)), bits(sign('sha256', info384, { key: p384.privateKey, dsaEncoding: 'der' })));
  t.throws(() => parseCsr(csr384), { code: 'MESH_E_KEY_UNSUPPORTED', message: /ec \(secp384r1\)/ });
});

t.test('publicKeyFromSpki: the JWK fast path gives the same key as the DER decoder and checks the point', async (t) => {
  for (const pair of [newKeyPair(), ed()]) {
    const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
    const { publicKey, keyType } = publicKeyFromSpki(spki);
    t.ok(publicKey.equals(pair.publicKey), `${keyType}: same key`);
    t.same(publicKey.export({ type: 'spki', format: 'der' }), spki, `${keyType}: exports to the same SPKI`);
    const encoded = publicKeyFromSpki(Buffer.from(spki)).spki;
    t.same(encoded, spki, `${keyType}: our encoding of the parsed key is the canonical SPKI`);
    t.not(encoded.buffer, spki.buffer, `${keyType}: a new buffer, not a view of the input`);
  }
  // A P-256 point that is not on the curve: refused, as the DER decoder refuses it.
  const spki = newKeyPair().publicKey.export({ type: 'spki', format: 'der' });
  const offCurve = Buffer.from(spki);
  offCurve.fill(7, 59);
  t.throws(() => publicKeyFromSpki(offCurve), { code: 'MESH_E_CSR_INVALID', message: /the public key cannot be read/ });
  // The compressed form of the same point: refused, with the code for a key the mesh does not accept.
  const p = newKeyPair();
  const full = p.publicKey.export({ type: 'spki', format: 'der' });
  const y = full.subarray(59);
  const compressed = Buffer.concat([
    Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
    Buffer.from([(y[31] as number) & 1 ? 3 : 2]),
    full.subarray(27, 59),
  ]);
  t.ok(createPublicKey({ key: compressed, format: 'der', type: 'spki' }).equals(p.publicKey), 'OpenSSL itself reads the compressed form');
  t.throws(() => publicKeyFromSpki(compressed), {
    code: 'MESH_E_KEY_UNSUPPORTED',
    message: /compressed point is not accepted/,
    details: { encoding: 'compressed-point' },
  });
  // A CSR over an off-curve key is a clear CSR error.
  const info = children(read(await createCsr(p.privateKey, p.publicKey)))[0]?.raw as Buffer;
  const nodes = children(read(info));
  const badInfo = seq(nodes[0]?.raw as Buffer, nodes[1]?.raw as Buffer, offCurve, nodes[3]?.raw as Buffer);
  const badCsr = seq(badInfo, seq(oid(OID.ecdsaWithSha256)), bits(sign('sha256', badInfo, { key: p.privateKey, dsaEncoding: 'der' })));
  t.throws(() => parseCsr(badCsr), { code: 'MESH_E_CSR_INVALID', message: /the public key cannot be read/ });
});

/** A CSR whose SubjectPublicKeyInfo is replaced by `spki`, signed by `privateKey`. */
async function csrWithSpki(spki: Buffer, privateKey: KeyObject): Promise<Buffer> {
  const p = newKeyPair();
  const nodes = children(read(children(read(await createCsr(p.privateKey, p.publicKey)))[0]?.raw as Buffer));
  const info = seq(nodes[0]?.raw as Buffer, nodes[1]?.raw as Buffer, spki, nodes[3]?.raw as Buffer);
  return seq(info, seq(oid(OID.ecdsaWithSha256)), bits(sign('sha256', info, { key: privateKey, dsaEncoding: 'der' })));
}

t.test('a P-256 key with a compressed point or explicit curve parameters: MESH_E_KEY_UNSUPPORTED', async (t) => {
  const dir = await tempDir(t, 'mesh-csr-');
  const keyFile = path.join(dir, 'k.pem');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
  await openssl(['ec', '-in', keyFile, '-pubout', '-conv_form', 'compressed', '-outform', 'DER', '-out', path.join(dir, 'c.der')]);
  await openssl(['ec', '-in', keyFile, '-pubout', '-param_enc', 'explicit', '-outform', 'DER', '-out', path.join(dir, 'e.der')]);
  const privateKey = createPrivateKey(await readFile(keyFile));
  const compressed = await readFile(path.join(dir, 'c.der'));
  const explicit = await readFile(path.join(dir, 'e.der'));

  const compressedCsr = await csrWithSpki(compressed, privateKey);
  const explicitCsr = await csrWithSpki(explicit, privateKey);
  t.throws(() => parseCsr(compressedCsr), {
    code: 'MESH_E_KEY_UNSUPPORTED',
    message: 'a P-256 key with a compressed point is not accepted; send the uncompressed point (04 || X || Y)',
  });
  t.throws(() => parseCsr(explicitCsr), {
    code: 'MESH_E_KEY_UNSUPPORTED',
    message: 'an EC key with explicit curve parameters is not accepted; use the named curve P-256 (prime256v1)',
    details: { encoding: 'explicit-parameters' },
  });
  // The same key in its canonical form is accepted: the refusals are about the encoding.
  const canonical = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  t.equal(parseCsr(await csrWithSpki(canonical, privateKey)).keyType, 'ec-p256');
  // A hybrid point (06/07) and an Ed25519 key with parameters: other encodings, refused too.
  const hybrid = Buffer.from(canonical);
  hybrid[26] = 0x06 | ((canonical[90] as number) & 1);
  t.throws(() => publicKeyFromSpki(hybrid), { code: /MESH_E_KEY_UNSUPPORTED|MESH_E_CSR_INVALID/ });
  const edSpki = ed().publicKey.export({ type: 'spki', format: 'der' });
  const edWithNull = seq(seq(oid(OID.ed25519), Buffer.from([Tag.NULL, 0])), edSpki.subarray(edSpki.length - 35));
  t.throws(() => publicKeyFromSpki(edWithNull), { code: /MESH_E_KEY_UNSUPPORTED|MESH_E_CSR_INVALID/ });
});

t.test('parseCsr reads the whole request strictly', async (t) => {
  const p = newKeyPair();
  const good = await createCsr(p.privateKey, p.publicKey);
  const [info, alg, sig] = children(read(good)) as [ReturnType<typeof read>, ReturnType<typeof read>, ReturnType<typeof read>];
  const [version, subject, spki, attributes] = children(info);
  const resign = (parts: Buffer[], algorithm: Buffer = alg.raw) => {
    const body = seq(...parts);
    return seq(body, algorithm, bits(sign('sha256', body, { key: p.privateKey, dsaEncoding: 'der' })));
  };
  const raw = (n: { raw: Buffer } | undefined) => n?.raw as Buffer;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['version 1', resign([smallInt(1), raw(subject), raw(spki), raw(attributes)]), /version: only v1/],
    ['no attributes field', resign([raw(version), raw(subject), raw(spki)]), /expected version, subject, key and attributes/],
    [
      'a subject value that is an INTEGER',
      resign([raw(version), seq(set(seq(oid(OID.commonName), smallInt(5)))), raw(spki), raw(attributes)]),
      /not a string type/,
    ],
    [
      'a subject UTF8String that is not UTF-8',
      resign([raw(version), seq(set(seq(oid(OID.commonName), tlv(Tag.UTF8_STRING, Buffer.from([0xc3]))))), raw(spki), raw(attributes)]),
      /not UTF-8/,
    ],
    ['an empty RDN', resign([raw(version), seq(set()), raw(spki), raw(attributes)]), /empty RDN/],
    [
      'an attribute without values',
      resign([raw(version), raw(subject), raw(spki), ctx(0, seq(oid('1.2.3'), set()))]),
      /attribute: no value/,
    ],
    [
      'an attribute value nested 20 deep',
      resign([
        raw(version),
        raw(subject),
        raw(spki),
        ctx(0, seq(oid('1.2.3'), set(Array.from({ length: 20 }).reduce<Buffer>((inner) => seq(inner), seq())))),
      ]),
      /nested too deep/,
    ],
    [
      'algorithm parameters',
      resign([raw(version), raw(subject), raw(spki), raw(attributes)], seq(oid(OID.ecdsaWithSha256), Buffer.from([Tag.NULL, 0]))),
      /parameters must be absent/,
    ],
    ['a fourth top-level field', seq(info.raw, alg.raw, sig.raw, smallInt(0)), /expected info, algorithm and signature/],
    [
      'unused bits in the signature',
      seq(info.raw, alg.raw, tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([4]), sig.content.subarray(1)]))),
      /unused bits/,
    ],
  ];
  for (const [what, der, message] of cases) t.throws(() => parseCsr(der), { code: 'MESH_E_CSR_INVALID', message }, what);
  // Attributes of common types, as an extensionRequest carries them, are read and accepted.
  const extensionRequest = ctx(
    0,
    seq(oid(OID.extensionRequest), set(seq(seq(oid(OID.subjectAltName), octets(seq(tlv(0x86, Buffer.from('spiffe://example.org/x')))))))),
  );
  t.equal(parseCsr(resign([raw(version), raw(subject), raw(spki), extensionRequest])).keyType, 'ec-p256');
});
