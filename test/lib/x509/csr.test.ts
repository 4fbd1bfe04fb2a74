import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run } from '../../../lib/exec.js';
import { newKeyPair } from '../../../lib/secret-files.js';
import { createCsr, keyTypeOf, parseCsr, publicKeyFromSpki, signatureAlgorithmFor } from '../../../lib/x509/csr.js';
import { bits, children, decodeOid, oid, read, seq } from '../../../lib/x509/der.js';
import { OID } from '../../../lib/x509/oids.js';
import { toPem } from '../../../lib/x509/pem.js';

const ed = () => generateKeyPairSync('ed25519');

t.test('createCsr / parseCsr round trip for P-256 and Ed25519', async (t) => {
  for (const [type, pair] of [
    ['ec-p256', newKeyPair()],
    ['ed25519', ed()],
  ] as const) {
    const csr = createCsr(pair.privateKey, pair.publicKey);
    const parsed = parseCsr(csr);
    t.equal(parsed.keyType, type);
    t.same(parsed.spki, pair.publicKey.export({ type: 'spki', format: 'der' }), `${type}: the SPKI is the key's`);
    t.ok(parsed.publicKey.equals(pair.publicKey));
    const [, alg] = children(read(csr));
    t.equal(
      decodeOid(children(alg as ReturnType<typeof read>)[0] as ReturnType<typeof read>),
      type === 'ed25519' ? OID.ed25519 : OID.ecdsaWithSha256,
    );
    t.ok(parseCsr(createCsr(pair.privateKey, pair.publicKey, 'vm1.example')).publicKey.equals(pair.publicKey), 'with a common name');
  }
});

t.test('openssl agrees that our CSRs are well formed and self-signed', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-csr-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, pair] of [
    ['p256', newKeyPair()],
    ['ed25519', ed()],
  ] as const) {
    const file = path.join(dir, `${name}.csr`);
    await writeFile(file, toPem(createCsr(pair.privateKey, pair.publicKey, 'cn-check'), 'CERTIFICATE REQUEST'));
    const r = await run('openssl', ['req', '-in', file, '-noout', '-verify', '-subject'], { timeoutMs: 30_000 });
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    t.match(r.stdout + r.stderr, /verify OK/i);
    t.match(r.stdout, /CN ?= ?cn-check/);
  }
});

t.test('parseCsr refuses trailing bytes, a mismatched algorithm OID and a bad signature', async (t) => {
  const p = newKeyPair();
  const good = createCsr(p.privateKey, p.publicKey);
  t.throws(() => parseCsr(Buffer.concat([good, Buffer.from([0])])), {
    code: 'MESH_E_CSR_INVALID',
    message: /trailing bytes after the CSR/,
  });

  // Ed25519 key, ECDSA algorithm OID (and the other way round).
  const e = ed();
  const edInfo = children(read(createCsr(e.privateKey, e.publicKey)))[0]?.raw as Buffer;
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
  t.throws(() => parseCsr(seq(oid('1.2.3'))), { code: 'MESH_E_CSR_INVALID', message: /CertificationRequestInfo/ });
  t.throws(() => parseCsr(good.subarray(0, good.length - 5)), { code: 'MESH_E_CSR_INVALID' });
});

t.test('only P-256 and Ed25519 keys are accepted', async (t) => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  t.equal(keyTypeOf(p384.publicKey), undefined);
  t.throws(() => signatureAlgorithmFor(p384.privateKey), { code: 'MESH_E_KEY_UNSUPPORTED' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  t.throws(() => parseCsr(createCsr(rsa.privateKey, rsa.publicKey)), {
    code: 'MESH_E_KEY_UNSUPPORTED',
    message: /key type rsa is not accepted; use ECDSA P-256 or Ed25519/,
  });
  // A P-384 key in a CSR labelled as ECDSA-with-SHA256.
  const info = children(read(createCsr(newKeyPair().privateKey, newKeyPair().publicKey)))[0]?.raw as Buffer;
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
  }
  // A P-256 point that is not on the curve: refused, as the DER decoder refuses it.
  const spki = newKeyPair().publicKey.export({ type: 'spki', format: 'der' });
  const offCurve = Buffer.from(spki);
  offCurve.fill(7, 59);
  t.throws(() => publicKeyFromSpki(offCurve));
  // The compressed form of the same point is not the fast path's shape, but the DER decoder still reads it.
  const p = newKeyPair();
  const full = p.publicKey.export({ type: 'spki', format: 'der' });
  const y = full.subarray(59);
  const compressed = Buffer.concat([
    Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
    Buffer.from([(y[31] as number) & 1 ? 3 : 2]),
    full.subarray(27, 59),
  ]);
  const viaDer = publicKeyFromSpki(compressed);
  t.equal(viaDer.keyType, 'ec-p256');
  t.ok(viaDer.publicKey.equals(p.publicKey), 'compressed point decodes to the same key');
  // A CSR over an off-curve key is a clear CSR error.
  const info = children(read(createCsr(p.privateKey, p.publicKey)))[0]?.raw as Buffer;
  const nodes = children(read(info));
  const badInfo = seq(nodes[0]?.raw as Buffer, nodes[1]?.raw as Buffer, offCurve, nodes[3]?.raw as Buffer);
  const badCsr = seq(badInfo, seq(oid(OID.ecdsaWithSha256)), bits(sign('sha256', badInfo, { key: p.privateKey, dsaEncoding: 'der' })));
  t.throws(() => parseCsr(badCsr), { code: 'MESH_E_CSR_INVALID', message: /the public key cannot be read/ });
});
