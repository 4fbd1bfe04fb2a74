/**
 * bench/x509-sign: the certificate work of the CA and the agent, done two
 * ways. The signing hot path (CSR check + one leaf, in the signing workers)
 * with our DER template against @peculiar/x509; and, off the hot path, the
 * operations that use @peculiar/x509 (agent CSR, CA pair, chain build and
 * verify) with Node 20's built-in WebCrypto against @peculiar/webcrypto as the
 * library's crypto provider. @peculiar/webcrypto is not a dependency: its rows
 * appear when it is installed (npm install --no-save @peculiar/webcrypto@1.7.2).
 * Prints a table; asserts nothing.
 *   npm run bench -- x509-sign
 */
import { type KeyObject, webcrypto } from 'node:crypto';
import { generationFromRow, issueLeaf } from '../controlplane/ca/authority.js';
import { createCaPair } from '../controlplane/ca/ca-certificates.js';
import { signCsr } from '../controlplane/ca/leaf-signer.js';
import { silentLogger } from '../lib/logger.js';
import { newKeyPair } from '../lib/secret-files.js';
import { keyIdentifier } from '../lib/x509/cert-info.js';
import { createCsr } from '../lib/x509/csr-builder.js';
import { webAlgorithms, x509 } from '../lib/x509/peculiar.js';
import { formatTable, measureAsync } from './lib/table.js';

type Provider = webcrypto.Crypto;
/** Milliseconds per variant of each operation (BENCH_MS overrides). */
const MS = Number(process.env.BENCH_MS ?? 2500);
const TD = 'bench.example';
const ID = `spiffe://${TD}/ns/default/sa/web`;

async function peculiarWebcrypto(): Promise<Provider | undefined> {
  const name = '@peculiar/webcrypto';
  try {
    const module = (await import(name)) as { Crypto: new () => Provider };
    return new module.Crypto();
  } catch {
    return undefined;
  }
}

async function keysVia(crypto: Provider, pair: { privateKey: KeyObject; publicKey: KeyObject }) {
  const algorithms = webAlgorithms(pair.privateKey);
  const privateKey = await crypto.subtle.importKey(
    'pkcs8',
    pair.privateKey.export({ type: 'pkcs8', format: 'der' }),
    algorithms.import as never,
    false,
    ['sign'],
  );
  const publicKey = await crypto.subtle.importKey(
    'spki',
    pair.publicKey.export({ type: 'spki', format: 'der' }),
    algorithms.import as never,
    true,
    ['verify'],
  );
  return { privateKey, publicKey, signingAlgorithm: algorithms.sign as never };
}

const now = Date.now();
const rootKey = newKeyPair();
const signerKey = newKeyPair();
const pair = await createCaPair({
  trustDomain: TD,
  label: 'bench',
  now,
  rootKey,
  signerKey,
  rootTtlMs: 86_400_000,
  signerTtlMs: 86_400_000,
});
const gen = generationFromRow(
  { id: 1, state: 'active', source: 'generated', root_pem: pair.rootPem, signer_pem: pair.signerPem, chain_pem: '' } as never,
  signerKey.privateKey,
  silentLogger,
);
const leafKey = newKeyPair();
const csr = await createCsr(leafKey.privateKey, leafKey.publicKey);
const spki = leafKey.publicKey.export({ type: 'spki', format: 'der' });
const leafDer = issueLeaf(gen, { spiffeId: ID, spki, ttlMs: 3_600_000, now }).der;

type Variant = [how: string, fn: () => unknown];
const operations = new Map<string, Variant[]>();
const variant = (operation: string, how: string, fn: () => unknown) => {
  const list = operations.get(operation) ?? [];
  list.push([how, fn]);
  operations.set(operation, list);
};

// --- the hot path: DER template against the library ---------------------------
variant('leaf: sign one certificate', 'DER template (issueLeaf)', () => issueLeaf(gen, { spiffeId: ID, spki, ttlMs: 3_600_000, now }));
variant('leaf: CSR check + sign', 'DER template (signCsr)', () => signCsr(gen, { csr, spiffeId: ID, ttlMs: 3_600_000, now }, 4096));

const providers: Array<[string, Provider]> = [['Node WebCrypto', webcrypto]];
const peculiar = await peculiarWebcrypto();
if (peculiar !== undefined) providers.push(['@peculiar/webcrypto', peculiar]);

for (const [name, crypto] of providers) {
  const signer = await keysVia(crypto, signerKey);
  const signerCert = new x509.X509Certificate(pair.signerPem);
  const root = new x509.X509Certificate(pair.rootPem);
  const leaf = new x509.X509Certificate(leafDer);
  const signerSki = keyIdentifier(signerKey.publicKey.export({ type: 'spki', format: 'der' })).toString('hex');
  const makeLeaf = (publicKey: ArrayBuffer | Buffer) =>
    x509.X509CertificateGenerator.create(
      {
        serialNumber: '01020304050607080910111213141516',
        subject: 'O=SPIFFE',
        issuer: signerCert.subjectName,
        notBefore: new Date(now),
        notAfter: new Date(now + 3_600_000),
        publicKey,
        signingKey: signer.privateKey,
        signingAlgorithm: signer.signingAlgorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']),
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ID }]),
          new x509.SubjectKeyIdentifierExtension(keyIdentifier(spki).toString('hex')),
          new x509.AuthorityKeyIdentifierExtension(signerSki),
        ],
      },
      crypto as never,
    );
  const how = `@peculiar/x509, ${name}`;
  variant('leaf: sign one certificate', how, () => makeLeaf(spki));
  variant('leaf: CSR check + sign', how, async () => {
    const request = new x509.Pkcs10CertificateRequest(csr);
    if (!(await request.verify(crypto as never))) throw new Error('CSR does not verify');
    return makeLeaf(request.publicKey.rawData);
  });
  variant('agent CSR (P-256: key import + sign)', how, async () => {
    const keys = await keysVia(crypto, leafKey);
    return x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: keys.signingAlgorithm }, crypto as never);
  });
  variant('CA pair (root + signing CA)', how, async () => {
    const rootKeys = await keysVia(crypto, rootKey);
    const extensions = [new x509.BasicConstraintsExtension(true, undefined, true)];
    const made = await x509.X509CertificateGenerator.createSelfSigned(
      { serialNumber: '01', name: 'CN=root', keys: rootKeys, signingAlgorithm: rootKeys.signingAlgorithm, extensions },
      crypto as never,
    );
    const signerSpki = signerKey.publicKey.export({ type: 'spki', format: 'der' });
    const params = { serialNumber: '02', subject: 'CN=signer', issuer: made.subjectName, publicKey: signerSpki };
    return x509.X509CertificateGenerator.create(
      { ...params, signingKey: rootKeys.privateKey, signingAlgorithm: rootKeys.signingAlgorithm },
      crypto as never,
    );
  });
  variant('chain build + verify (leaf, signing CA, root)', how, async () => {
    const chain = await new x509.X509ChainBuilder({ certificates: [root, signerCert] }).build(leaf, crypto as never);
    if (chain.length !== 3) throw new Error('chain not built');
  });
}

// Variants of one operation are measured in turns (ROUNDS rounds), so that the load of a
// shared machine falls on each of them alike; the table gives the median round.
const ROUNDS = 5;
const rows: Array<Array<string | number>> = [];
for (const [operation, variants] of operations) {
  const means = variants.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [, fn]] of variants.entries()) means[i]?.push((await measureAsync(async () => fn(), MS / ROUNDS)).meanUs);
  }
  for (const [i, [how]] of variants.entries()) {
    const sorted = (means[i] ?? []).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
    rows.push([operation, how, 1e6 / median, median]);
  }
}
if (peculiar === undefined)
  rows.push(['(@peculiar/webcrypto rows)', 'not installed: npm install --no-save @peculiar/webcrypto@1.7.2', '-', '-']);

process.stdout.write(`x509-sign: ${ROUNDS} alternating rounds of ${MS / ROUNDS} ms per variant, median round; one process, one thread\n\n`);
process.stdout.write(`${formatTable(['operation', 'how', 'ops/s', 'mean µs'], rows)}\n`);
