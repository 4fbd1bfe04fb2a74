/**
 * The CA's certificates checked by an independent parser, @peculiar/x509:
 * every extension of a root, a signing CA and a leaf from the hot-path
 * template (critical flags included), validity, serial, names and
 * signatures; and the authority key identifier copied from an issuer whose
 * subject key identifier is not a SHA-1 of its key.
 */
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import { type Generation, generationFromRow, issueLeaf, issuerKeyIdOf } from '../../../controlplane/ca/authority.js';
import { createCaPair, createIntermediate, createRoot } from '../../../controlplane/ca/ca-certificates.js';
import type { GenerationRow } from '../../../controlplane/store/ca-repo.js';
import { createLogger, silentLogger } from '../../../lib/logger.js';
import { newKeyPair } from '../../../lib/secret-files.js';
import { certFields, keyIdentifier } from '../../../lib/x509/cert-info.js';
import { x509 } from '../../../lib/x509/peculiar.js';
import { toPem } from '../../../lib/x509/pem.js';

const TD = 'oracle.example';
const DAY = 86_400_000;
const NOW = Date.UTC(2030, 0, 2, 3, 4, 5, 678);

type Ext = x509.Extension;
const hex = (b: Buffer) => b.toString('hex');

function ext<T extends Ext>(t: Test, cert: x509.X509Certificate, type: new (...args: never[]) => T, critical: boolean): T {
  const found = cert.getExtensions(type as never) as T[];
  t.equal(found.length, 1, `one ${type.name}`);
  const e = found[0] as T;
  t.equal(e.critical, critical, `${type.name} critical: ${critical}`);
  return e;
}

function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

function rowFor(rootPem: string, signerPem: string): GenerationRow {
  return {
    id: 7,
    state: 'active',
    source: 'generated',
    root_pem: rootPem,
    signer_pem: signerPem,
    chain_pem: '',
    signer_key_file: '',
    root_key_file: null,
    created_at: NOW,
    activated_at: NOW,
    retired_at: null,
  };
}

function checkCa(t: Test, cert: x509.X509Certificate, key: KeyObject, pathLen: number | undefined): void {
  const bc = ext(t, cert, x509.BasicConstraintsExtension, true);
  t.equal(bc.ca, true, 'CA:true');
  t.equal(bc.pathLength, pathLen, `pathLen ${pathLen}`);
  const ku = ext(t, cert, x509.KeyUsagesExtension, true);
  t.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, 'keyCertSign and cRLSign only');
  t.equal(cert.getExtensions(x509.ExtendedKeyUsageExtension).length, 0, 'no extKeyUsage on a CA');
  const san = ext(t, cert, x509.SubjectAlternativeNameExtension, false);
  t.same(san.names.toJSON(), [{ type: 'url', value: `spiffe://${TD}` }], 'the trust domain SPIFFE ID only');
  t.equal(ext(t, cert, x509.SubjectKeyIdentifierExtension, false).keyId, hex(keyIdentifier(spkiOf(key))), 'SKI: method 1');
  t.same(Buffer.from(cert.publicKey.rawData), spkiOf(key), 'the subject key');
}

t.test('root, signing CA and leaf: every extension, validity, serial and signature', async (t) => {
  const rootKey = newKeyPair();
  const signerKey = newKeyPair();
  const pair = await createCaPair({
    trustDomain: TD,
    label: 'L1',
    now: NOW,
    rootKey,
    signerKey,
    rootTtlMs: 3650 * DAY,
    signerTtlMs: 730 * DAY,
  });
  const root = new x509.X509Certificate(pair.rootPem);
  const signer = new x509.X509Certificate(pair.signerPem);

  checkCa(t, root, rootKey.publicKey, undefined);
  t.equal(root.getExtensions(x509.AuthorityKeyIdentifierExtension).length, 0, 'a self-signed root has no AKI');
  t.equal(root.subject, `O=${TD}, CN=${TD} root CA L1`);
  t.equal(root.issuer, root.subject);
  t.ok(await root.isSelfSigned(), 'self-signed, signature verifies');
  t.equal(root.notBefore.getTime(), Math.floor((NOW - 10_000) / 1000) * 1000, 'backdated 10 s, whole seconds');
  t.equal(root.notAfter.getTime(), Math.floor((NOW + 3650 * DAY) / 1000) * 1000);
  t.match(root.serialNumber, /^[0-9a-f]{32}$/, '128-bit serial');

  checkCa(t, signer, signerKey.publicKey, 0);
  const rootSki = ext(t, root, x509.SubjectKeyIdentifierExtension, false).keyId;
  t.equal(ext(t, signer, x509.AuthorityKeyIdentifierExtension, false).keyId, rootSki, "signing CA's AKI is the root's SKI");
  t.same(certFields(Buffer.from(signer.rawData)).extensions.size, 5, 'exactly five extensions');
  t.same(
    Buffer.from(signer.issuerName.toArrayBuffer()),
    certFields(new X509Certificate(pair.rootPem).raw).subject,
    'issuer = the root subject, byte for byte',
  );
  t.ok(await signer.verify({ publicKey: root.publicKey, signatureOnly: true }), 'signed by the root');
  t.equal(signer.notAfter.getTime(), Math.floor((NOW + 730 * DAY) / 1000) * 1000);

  const gen: Generation = generationFromRow(rowFor(pair.rootPem, pair.signerPem), signerKey.privateKey, silentLogger);
  const leafKey = generateKeyPairSync('ed25519');
  const serialBytes = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const issued = issueLeaf(
    gen,
    { spiffeId: `spiffe://${TD}/ns/default/sa/web`, spki: spkiOf(leafKey.publicKey), ttlMs: 3_600_000, now: NOW },
    () => Buffer.from(serialBytes),
  );
  const leaf = new x509.X509Certificate(issued.der);
  const bc = ext(t, leaf, x509.BasicConstraintsExtension, true);
  t.equal(bc.ca, false, 'CA:false');
  t.equal(bc.pathLength, undefined);
  t.equal(ext(t, leaf, x509.KeyUsagesExtension, true).usages, x509.KeyUsageFlags.digitalSignature, 'digitalSignature only');
  t.same(ext(t, leaf, x509.ExtendedKeyUsageExtension, false).usages, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth, clientAuth');
  t.same(ext(t, leaf, x509.SubjectAlternativeNameExtension, false).names.toJSON(), [
    { type: 'url', value: `spiffe://${TD}/ns/default/sa/web` },
  ]);
  t.equal(ext(t, leaf, x509.SubjectKeyIdentifierExtension, false).keyId, hex(keyIdentifier(spkiOf(leafKey.publicKey))));
  t.equal(
    ext(t, leaf, x509.AuthorityKeyIdentifierExtension, false).keyId,
    ext(t, signer, x509.SubjectKeyIdentifierExtension, false).keyId,
    "leaf AKI is the signing CA's SKI",
  );
  t.equal(leaf.extensions.length, 6, 'exactly six extensions');
  t.equal(leaf.subject, 'O=SPIFFE');
  t.equal(leaf.issuer, signer.subject);
  t.equal(leaf.serialNumber, '00112233445566778899aabbccddeeff'.replace(/^00/, '01'), 'the random serial, first byte never 0');
  t.equal(issued.serial, leaf.serialNumber.toUpperCase());
  t.equal(leaf.notBefore.getTime(), issued.notBefore);
  t.equal(leaf.notBefore.getTime(), Math.floor((NOW - 10_000) / 1000) * 1000, 'backdated 10 s');
  t.equal(leaf.notAfter.getTime(), Math.floor((NOW + 3_600_000) / 1000) * 1000, 'one hour');
  t.same(Buffer.from(leaf.publicKey.rawData), spkiOf(leafKey.publicKey), 'the requested key');
  t.equal((leaf.signatureAlgorithm as unknown as { name: string }).name, 'ECDSA');
  t.ok(await leaf.verify({ publicKey: signer.publicKey, signatureOnly: true }), 'signed by the signing CA');
  const chain = await new x509.X509ChainBuilder({ certificates: [signer, root] }).build(leaf);
  t.equal(chain.length, 3, 'the chain builder links leaf -> signing CA -> root by name and key identifiers');
});

t.test('the AKI is the issuer SKI as written, even when it is not a SHA-1 of the key', async (t) => {
  // An operator root with a SKI of its own choosing: made here by building its certificate with the library.
  const rootKey = newKeyPair();
  const custom = 'c0ffee00112233445566778899aabbccddeeff0011223344';
  const keys = await (await import('../../../lib/x509/peculiar.js')).webKeyPair(rootKey.privateKey, rootKey.publicKey);
  const operatorRoot = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: [{ '2.5.4.10': ['Operator'] }, { '2.5.4.3': ['operator root'] }],
    notBefore: new Date(NOW - DAY),
    notAfter: new Date(NOW + 365 * DAY),
    keys,
    signingAlgorithm: keys.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      new x509.SubjectKeyIdentifierExtension(custom),
    ],
  });
  const rootPem = operatorRoot.toString('pem');
  const signerKey = newKeyPair();
  const signerDer = await createIntermediate(
    TD,
    'imp',
    NOW,
    new X509Certificate(rootPem),
    rootKey.privateKey,
    signerKey.publicKey,
    2 * 365 * DAY,
  );
  const signer = new x509.X509Certificate(signerDer);
  t.equal(signer.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, custom, 'AKI = the custom 24-byte SKI');
  t.equal(signer.notAfter.getTime(), Math.floor((NOW + 365 * DAY) / 1000) * 1000, 'never outlives its issuer');
  t.same(certFields(signerDer).extensions.get('2.5.29.35')?.value, Buffer.from(`301a8018${custom}`, 'hex'), 'keyIdentifier [0] only');

  // Leaves of an imported intermediate whose SKI is custom carry that SKI as AKI.
  const gen = generationFromRow(rowFor(rootPem, toPem(signerDer)), signerKey.privateKey, silentLogger);
  const signerSki = signer.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId as string;
  t.equal(gen.signerKeyId.toString('hex'), signerSki);
  const leaf = issueLeaf(gen, { spiffeId: `spiffe://${TD}/x`, spki: spkiOf(newKeyPair().publicKey), ttlMs: 60_000, now: NOW });
  t.equal(new x509.X509Certificate(leaf.der).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, signerSki);

  // A stored signing CA without a SKI (imported before SKIs were required) still loads: its leaves name
  // the RFC 5280 method-1 key identifier, as the older code did, and the control plane warns naming the generation.
  const bare = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '02',
    name: 'CN=bare',
    notBefore: new Date(NOW - DAY),
    notAfter: new Date(NOW + DAY),
    keys,
    signingAlgorithm: keys.signingAlgorithm,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const warnings: string[] = [];
  const logger = createLogger({ level: 'warn', sink: { write: (line) => warnings.push(line) } });
  const old = generationFromRow(rowFor(bare.toString('pem'), bare.toString('pem')), rootKey.privateKey, logger);
  const method1 = keyIdentifier(spkiOf(rootKey.publicKey));
  t.same(old.signerKeyId, method1, 'the signer key id is the SHA-1 of its key (RFC 5280 method 1)');
  const oldLeaf = issueLeaf(old, { spiffeId: `spiffe://${TD}/x`, spki: spkiOf(newKeyPair().publicKey), ttlMs: 60_000, now: NOW });
  t.equal(new x509.X509Certificate(oldLeaf.der).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, hex(method1), 'leaf AKI');
  t.equal(warnings.length, 1, 'one warning');
  t.match(JSON.parse(warnings[0] as string), {
    level: 'warn',
    msg: /signing CA has no subjectKeyIdentifier/,
    generation: 7,
    subject: 'CN=bare',
  });

  // Issuing under a CA certificate without a SKI (a new signing CA) is refused: there is nothing to copy.
  t.throws(() => issuerKeyIdOf(new X509Certificate(bare.toString('pem'))), {
    code: 'MESH_E_CERT_INVALID',
    message: /the CA certificate CN=bare has no subjectKeyIdentifier extension/,
  });
});

t.test('roots with Ed25519 and RSA keys (an operator may import either) sign a P-256 signing CA', async (t) => {
  for (const [name, pair] of [
    ['Ed25519', generateKeyPairSync('ed25519')],
    ['RSA', generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ] as const) {
    const rootDer = await createRoot(TD, name, NOW, pair, 10 * DAY);
    const signerKey = newKeyPair();
    const signerDer = await createIntermediate(TD, name, NOW, new X509Certificate(rootDer), pair.privateKey, signerKey.publicKey, DAY);
    const root = new x509.X509Certificate(rootDer);
    const signer = new x509.X509Certificate(signerDer);
    t.ok(await root.isSelfSigned(), `${name}: root self-signed`);
    t.ok(await signer.verify({ publicKey: root.publicKey, signatureOnly: true }), `${name}: signing CA signed by the root`);
    t.same(Buffer.from(signer.publicKey.rawData), spkiOf(signerKey.publicKey), `${name}: the signing CA carries its own key`);
    t.ok(new X509Certificate(signerDer).verify(new X509Certificate(rootDer).publicKey), `${name}: OpenSSL agrees`);
  }
});
