/**
 * The intermediate exported for Istio's plug-in CA: its certificate profile,
 * checked with the openssl CLI (an independent parser), its chain, a leaf
 * that openssl signs with it as Istio's CA would (checked by openssl and by
 * go-spiffe against our bundle), the record and audit rows, and each refusal.
 * The CSRs come from openssl too; the CA runs over a real SQLite store.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CaManager } from '../../../controlplane/ca/ca-manager.js';
import { DEFAULT_EXPORT_TTL_MS, IntermediateExporter } from '../../../controlplane/ca/intermediate-export.js';
import { AuditRepo } from '../../../controlplane/store/audit-repo.js';
import { CaRepo } from '../../../controlplane/store/ca-repo.js';
import { CertRepo } from '../../../controlplane/store/cert-repo.js';
import { openDb } from '../../../controlplane/store/db.js';
import { ExportRepo } from '../../../controlplane/store/export-repo.js';
import { silentLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { istioWorkloadCert } from '../../support/istio-sidecar.js';
import { issuedCert, openssl, opensslCsr, opensslRun, selfSignedCert } from '../../support/openssl.js';
import { opensslVerify, verifySvid } from '../../support/svid-verify.js';
import { tempDir } from '../../support/temp-dir.js';

t.setTimeout(180_000);

const TD = 'example.org';
const SLEEPER = `spiffe://${TD}/ns/istio-ns/sa/sleeper`;

async function world(t: Test) {
  const dataDir = await tempDir(t, 'mesh-caexport-');
  const db = openDb(path.join(dataDir, 'controlplane.db'));
  t.teardown(() => db.close());
  const clock = new FakeClock(Date.now());
  const deps = { db, ca: new CaRepo(db), audit: new AuditRepo(db), dataDir, trustDomain: TD, clock, logger: silentLogger };
  const exports = new ExportRepo(db);
  const manager = new CaManager({ ...deps, certs: new CertRepo(db), exports });
  await manager.init();
  const exporter = new IntermediateExporter({ ...deps, manager, exports });
  const csr = async (name: string, key: 'P-256' | 'ed25519' = 'P-256') => {
    const made = await opensslCsr(dataDir, name, { ext: [], key });
    t.equal(made.code, 0, `openssl req ${name}: ${made.stderr}`);
    return { der: await readFile(made.csr), key: made.key };
  };
  return { dataDir, db, clock, manager, exporter, audit: deps.audit, csr };
}

t.test('the exported intermediate: a pathLen-0 CA of the trust domain under the active root', async (t) => {
  const w = await world(t);
  const { der, key } = await w.csr('istio');
  const out = await w.exporter.export({ kind: 'istio', csr: der, ttlMs: DEFAULT_EXPORT_TTL_MS });
  const root = w.manager.active().root;

  const text = await openssl(['x509', '-noout', '-text', '-certopt', 'no_sigdump,no_pubkey'], { input: out.certPem });
  t.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/, 'CA:TRUE, pathlen:0, critical');
  t.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/, 'keyCertSign and cRLSign only, critical');
  t.match(text, /X509v3 Subject Alternative Name:\s+URI:spiffe:\/\/example\.org\n/, 'the trust domain as its only SAN');
  t.match(text, /X509v3 Subject Key Identifier/, 'a subject key identifier');
  t.notMatch(text, /Extended Key Usage/, 'no extended key usage (it would constrain the leaves in some verifiers)');
  t.match(text, /Subject: O\s*=\s*example\.org, CN\s*=\s*example\.org istio CA /);

  const cert = new X509Certificate(out.certPem);
  t.ok(cert.ca, 'node parses it as a CA');
  t.ok(cert.checkIssued(root) && cert.verify(root.publicKey), 'signed by the active root');
  const aki = /Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
  const rootSki = /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(
    await openssl(['x509', '-noout', '-text'], { input: root.toString() }),
  )?.[1];
  t.ok(aki !== undefined && aki === rootSki, `AKI ${aki} is the root's SKI ${rootSki}`);
  t.equal(out.serial, cert.serialNumber);
  t.equal(out.notAfter, Math.floor((w.clock.now() + DEFAULT_EXPORT_TTL_MS) / 1000) * 1000, 'a year from now');
  t.equal(out.rootGeneration, w.manager.active().id);

  t.equal(out.chainPem, out.certPem + root.toString(), 'cert-chain.pem: the intermediate, then its root');
  t.equal(out.rootsPem, w.manager.bundle().roots.join(''), 'root-cert.pem: the trust bundle');
  // Istio's CA signs a workload certificate with the exported key (here: openssl does).
  await writeFile(path.join(w.dataDir, 'ca-cert.pem'), out.certPem);
  await writeFile(path.join(w.dataDir, 'root-cert.pem'), out.rootsPem);
  const chained = await opensslRun([
    'verify',
    '-x509_strict',
    '-CAfile',
    path.join(w.dataDir, 'root-cert.pem'),
    path.join(w.dataDir, 'ca-cert.pem'),
  ]);
  t.equal(chained.code, 0, `openssl verify -x509_strict: the intermediate chains to the bundle: ${chained.stdout}${chained.stderr}`);
  const leaf = await istioWorkloadCert(w.dataDir, 'sleeper', { cert: path.join(w.dataDir, 'ca-cert.pem'), key }, SLEEPER, '0x4D3C2B1A');

  const svid = await verifySvid(leaf.pem + out.certPem, out.rootsPem);
  t.ok(svid.ok, `go-spiffe accepts the Istio-signed leaf: ${JSON.stringify(svid)}`);
  if (svid.ok) t.equal(svid.spiffe_id, SLEEPER);
  for (const purpose of ['sslclient', 'sslserver'] as const) {
    const r = await opensslVerify(leaf.pem + out.certPem, out.rootsPem, purpose);
    t.ok(r.ok, `openssl ${purpose}: ${r.output}`);
  }

  const [row] = w.exporter.list();
  t.match(row, { id: out.id, kind: 'istio', root_generation_id: out.rootGeneration, serial: out.serial, not_after: out.notAfter });
  const audited = w.audit.list().at(-1);
  t.match(audited, { action: 'ca.export-intermediate', result: 'ok', serial: out.serial, actor: 'admin' });
  t.match(audited?.detail, `exported-intermediate (istio) ${out.id} under generation ${out.rootGeneration}`);
  t.equal(w.manager.bundle().roots.length, 1, 'the bundle is unchanged: no new root');
});

t.test('the lifetime never passes the root notAfter', async (t) => {
  const w = await world(t);
  const out = await w.exporter.export({ kind: 'istio', csr: (await w.csr('long')).der, ttlMs: 50 * 365 * 86_400_000 });
  t.equal(out.notAfter, Date.parse(w.manager.active().root.validTo));
});

t.test('refusals are coded, audited and record nothing', async (t) => {
  const w = await world(t);
  const good = (await w.csr('good')).der;
  const refuses = async (what: string, request: { kind: string; csr: Uint8Array; ttlMs: number }, code: string) => {
    await t.rejects(w.exporter.export(request), { code }, what);
    t.same(w.exporter.list(), [], `${what}: nothing recorded`);
    t.match(w.audit.list().at(-1), { action: 'ca.export-intermediate', result: code }, `${what}: audited`);
  };
  await refuses('another kind', { kind: 'linkerd', csr: good, ttlMs: 1000 }, 'MESH_E_USAGE');
  await refuses('a zero lifetime', { kind: 'istio', csr: good, ttlMs: 0 }, 'MESH_E_USAGE');
  await refuses('not a CSR', { kind: 'istio', csr: Buffer.from('nonsense'), ttlMs: 1000 }, 'MESH_E_CSR_INVALID');
  const tampered = Buffer.from(good);
  tampered[tampered.length - 5] = (tampered[tampered.length - 5] ?? 0) ^ 0xff;
  await refuses('a CSR whose signature fails', { kind: 'istio', csr: tampered, ttlMs: 1000 }, 'MESH_E_CSR_INVALID');
  await refuses('an Ed25519 key', { kind: 'istio', csr: (await w.csr('ed', 'ed25519')).der, ttlMs: 1000 }, 'MESH_E_KEY_UNSUPPORTED');
});

/** An operator's root and an intermediate under it, made by openssl, with the trust domain's SPIFFE ID. */
async function operatorCa(w: Awaited<ReturnType<typeof world>>) {
  const ext = (pathLen: string) => [
    `basicConstraints = critical,CA:true${pathLen}`,
    'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash',
    `subjectAltName = URI:spiffe://${TD}`,
  ];
  const opRoot = await selfSignedCert(w.dataDir, 'op-root', { subject: '/O=Operator/CN=op-root', ext: ext(''), days: 365 });
  const opInt = await issuedCert(w.dataDir, 'op-int', opRoot, {
    subject: '/O=Operator/CN=op-int',
    serial: '77',
    days: 300,
    ext: [...ext(',pathlen:0'), 'authorityKeyIdentifier = keyid'],
  });
  return { opRoot, opInt };
}

t.test('an imported operator root signing: the export is under the operator root, within its lifetime', async (t) => {
  const w = await world(t);
  const { opRoot } = await operatorCa(w);
  w.clock.advance(60_000);
  await w.manager.importCa(opRoot.pem, await readFile(opRoot.key, 'utf8'), '');
  await w.manager.activate();
  const out = await w.exporter.export({ kind: 'istio', csr: (await w.csr('under-op')).der, ttlMs: 400 * 86_400_000 });
  const root = new X509Certificate(opRoot.pem);
  const cert = new X509Certificate(out.certPem);
  t.ok(cert.checkIssued(root) && cert.verify(root.publicKey), "signed by the operator's root");
  t.equal(out.notAfter, Date.parse(root.validTo), "cut at the operator root's notAfter");
  t.equal(out.chainPem, out.certPem + root.toString(), 'cert-chain.pem ends with the operator root');
  t.ok(out.rootsPem.includes(root.toString()), 'root-cert.pem holds it');
});

t.test('an imported intermediate signing: its root key is not here, so no export', async (t) => {
  const w = await world(t);
  const { opRoot, opInt } = await operatorCa(w);
  // openssl's certificates start the second it makes them: import a minute later.
  w.clock.advance(60_000);
  await w.manager.importCa(opInt.pem, await readFile(opInt.key, 'utf8'), opRoot.pem);
  await w.manager.activate();
  await t.rejects(w.exporter.export({ kind: 'istio', csr: (await w.csr('x')).der, ttlMs: 1000 }), {
    code: 'MESH_E_CA_EXPORT_UNAVAILABLE',
    message: /imported intermediate/,
  });
  t.same(w.exporter.list(), []);
});

t.test('retiring a root that an unexpired exported intermediate chains to needs --force', async (t) => {
  const w = await world(t);
  const hour = 3_600_000;
  const old = await w.exporter.export({ kind: 'istio', csr: (await w.csr('old')).der, ttlMs: hour });
  await w.manager.prepare();
  await w.manager.activate();
  const renewed = await w.exporter.export({ kind: 'istio', csr: (await w.csr('new')).der, ttlMs: 10 * hour });
  t.equal(renewed.rootGeneration, w.manager.active().id, 'a new export chains to the new root');
  t.equal(renewed.rootsPem.split('BEGIN CERTIFICATE').length - 1, 2, 'root-cert.pem holds both roots while both are in the bundle');
  await t.rejects(w.manager.retire(false), {
    code: 'MESH_E_CA_ROOT_IN_USE',
    message: new RegExp(`exported intermediate\\(s\\) ${old.id} \\(istio\\) still chain to the previous root`),
    details: { unexpired: 0, exportedIntermediates: [old.id] },
  });
  t.match(w.audit.list().at(-1), { action: 'ca.rotate.retire', result: 'MESH_E_CA_ROOT_IN_USE' });
  w.clock.advance(2 * hour);
  const done = await w.manager.retire(false);
  t.equal(done.retired, old.rootGeneration, 'once it has expired, the old root retires without --force');
});
