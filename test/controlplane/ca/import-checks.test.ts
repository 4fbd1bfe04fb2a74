/**
 * `ca import` checks every CA certificate on the imported path (the imported
 * certificate, then its issuers to the root): CA:true, keyUsage keyCertSign,
 * pathLenConstraint and validity. Each refusal is MESH_E_CA_IMPORT_INVALID,
 * names the certificate (place on the path, where it was given, subject) and
 * why, and leaves nothing behind. The certificates are made by the openssl
 * CLI, the CA manager runs over a real SQLite store in a temporary folder.
 */
import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CaManager } from '../../../controlplane/ca/ca-manager.js';
import { caConstraints, checkImportPath } from '../../../controlplane/ca/import-checks.js';
import { AuditRepo } from '../../../controlplane/store/audit-repo.js';
import { CaRepo } from '../../../controlplane/store/ca-repo.js';
import { CertRepo } from '../../../controlplane/store/cert-repo.js';
import { openDb } from '../../../controlplane/store/db.js';
import { silentLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { issuedCert, type OpensslCert, selfSignedCert } from '../../support/openssl.js';
import { tempDir } from '../../support/temp-dir.js';

const TD = 'example.org';
const DAY = 86_400_000;

interface CaSpec {
  ca?: boolean;
  /** The keyUsage line's value; null for no keyUsage extension. */
  keyUsage?: string | null;
  pathLen?: number;
  days?: number;
}

let serial = 100;

/** An operator CA made by openssl: self-signed without `issuer`, else issued by it. */
function opCa(dir: string, name: string, issuer: OpensslCert | undefined, spec: CaSpec = {}): Promise<OpensslCert> {
  const ext = [
    `basicConstraints = critical,CA:${spec.ca === false ? 'false' : 'true'}${spec.pathLen === undefined ? '' : `,pathlen:${spec.pathLen}`}`,
    ...(spec.keyUsage === null ? [] : [`keyUsage = critical,${spec.keyUsage ?? 'keyCertSign,cRLSign'}`]),
    'subjectKeyIdentifier = hash',
    ...(issuer === undefined ? [] : ['authorityKeyIdentifier = keyid']),
    `subjectAltName = URI:spiffe://${TD}`,
  ];
  const cert = { subject: `/O=Operator/CN=${name}`, ext, days: spec.days ?? 365 };
  return issuer === undefined ? selfSignedCert(dir, name, cert) : issuedCert(dir, name, issuer, { ...cert, serial: String(serial++) });
}

async function manager(t: Test) {
  const dataDir = await tempDir(t, 'mesh-caimport-');
  const db = openDb(path.join(dataDir, 'controlplane.db'));
  t.teardown(() => db.close());
  // A little ahead: openssl makes the certificates after this, valid from the second it makes them.
  const clock = new FakeClock(Date.now() + 10 * 60_000);
  const ca = new CaManager({
    db,
    ca: new CaRepo(db),
    certs: new CertRepo(db),
    audit: new AuditRepo(db),
    dataDir,
    trustDomain: TD,
    clock,
    logger: silentLogger,
  });
  await ca.init();
  const keysBefore = await readdir(path.join(dataDir, 'ca'));
  /** Imports and expects a refusal matching `message`, with nothing stored and no key file left. */
  const refuses = async (what: string, cert: OpensslCert, chain: OpensslCert[], message: RegExp, details?: object) => {
    const before = ca.all().length;
    await t.rejects(
      ca.importCa(cert.pem, await readFile(cert.key, 'utf8'), chain.map((c) => c.pem).join('')),
      { code: 'MESH_E_CA_IMPORT_INVALID', message, ...(details ? { details } : {}) },
      what,
    );
    t.equal(ca.all().length, before, `${what}: nothing imported`);
    t.same(await readdir(path.join(dataDir, 'ca')), keysBefore, `${what}: no key file left`);
  };
  return { ca, clock, refuses };
}

t.test('caConstraints reads CA:true, pathLen and keyCertSign from the DER', async (t) => {
  const dir = await tempDir(t);
  const der = async (name: string, spec: CaSpec) => new X509Certificate((await opCa(dir, name, undefined, spec)).pem).raw;
  t.same(caConstraints(await der('a', {})), { ca: true, pathLen: undefined, keyCertSign: true });
  t.same(caConstraints(await der('b', { pathLen: 3 })), { ca: true, pathLen: 3, keyCertSign: true });
  t.same(caConstraints(await der('c', { keyUsage: 'digitalSignature' })), { ca: true, pathLen: undefined, keyCertSign: false });
  t.same(caConstraints(await der('d', { keyUsage: null })), { ca: true, pathLen: undefined, keyCertSign: undefined });
  t.same(caConstraints(await der('e', { ca: false, keyUsage: 'digitalSignature' })), {
    ca: false,
    pathLen: undefined,
    keyCertSign: false,
  });
});

t.test('every CA on an imported path must be CA:true with keyCertSign', async (t) => {
  const dir = await tempDir(t);
  const { refuses } = await manager(t);
  const root = await opCa(dir, 'root', undefined);

  const leafish = await opCa(dir, 'leafish', root, { ca: false, keyUsage: 'digitalSignature' });
  const underLeafish = await opCa(dir, 'under-leafish', leafish);
  await refuses(
    'a chain certificate that is not a CA',
    underLeafish,
    [root, leafish],
    /^certificate 1 of the path \(--chain certificate 2, O=Operator, CN=leafish\) is not a CA \(basicConstraints CA:true is required\)$/,
    { index: 1, given: '--chain certificate 2', subject: 'O=Operator, CN=leafish' },
  );

  const noSign = await opCa(dir, 'no-sign', root, { keyUsage: 'digitalSignature,cRLSign' });
  await refuses(
    'a chain certificate whose keyUsage lacks keyCertSign',
    await opCa(dir, 'under-no-sign', noSign),
    [noSign, root],
    /^certificate 1 of the path \(--chain certificate 1, O=Operator, CN=no-sign\) has a keyUsage without keyCertSign/,
  );

  const noKu = await opCa(dir, 'no-ku', root, { keyUsage: null });
  await refuses(
    'an imported intermediate without keyUsage',
    noKu,
    [root],
    /^certificate 0 of the path \(the imported certificate, O=Operator, CN=no-ku\) has no keyUsage extension \(keyCertSign is required\)$/,
  );

  const rootNoSign = await opCa(dir, 'root-no-sign', undefined, { keyUsage: 'digitalSignature' });
  await refuses(
    'an imported root without keyCertSign',
    rootNoSign,
    [],
    /^certificate 0 of the path \(the imported certificate, O=Operator, CN=root-no-sign\) has a keyUsage without keyCertSign/,
  );
});

t.test('pathLenConstraint counts the CAs below, the signing CA made under an imported root included', async (t) => {
  const dir = await tempDir(t);
  const { ca, refuses } = await manager(t);

  const root0 = await opCa(dir, 'root0', undefined, { pathLen: 0 });
  await refuses(
    'an imported root with pathlen 0',
    root0,
    [],
    /^certificate 0 of the path \(the imported certificate, O=Operator, CN=root0\) allows 0 CA certificate\(s\) below it \(pathLenConstraint\) but would have 1$/,
  );
  await refuses(
    'an intermediate under a pathlen-0 root',
    await opCa(dir, 'int-under-root0', root0),
    [root0],
    /^certificate 1 of the path \(--chain certificate 1, O=Operator, CN=root0\) allows 0 CA certificate\(s\) below it/,
  );

  const root1 = await opCa(dir, 'root1', undefined, { pathLen: 1 });
  const mid = await opCa(dir, 'mid', root1, { pathLen: 0 });
  await refuses(
    'two intermediates under a pathlen-1 root',
    await opCa(dir, 'int-under-mid', mid),
    [root1, mid],
    /^certificate 1 of the path \(--chain certificate 2, O=Operator, CN=mid\) allows 0 CA certificate\(s\) below it \(pathLenConstraint\) but would have 1$/,
  );

  // Within the limits: an intermediate (pathlen 0, it signs SVIDs only) under a pathlen-1 root.
  const gen = await ca.importCa(mid.pem, await readFile(mid.key, 'utf8'), root1.pem);
  t.match(gen, { state: 'prepared', source: 'imported' }, 'imported');
  t.match(gen.signer.subject, /CN=mid/);
});

t.test('every certificate on the path must be valid now', async (t) => {
  const dir = await tempDir(t);
  const { clock, refuses } = await manager(t);
  const shortRoot = await opCa(dir, 'short-root', undefined, { days: 30 });
  const longInt = await opCa(dir, 'long-int', shortRoot, { days: 365 });
  const shortInt = await opCa(dir, 'short-int', shortRoot, { days: 30 });
  const root = await opCa(dir, 'root', undefined);
  const int = await opCa(dir, 'int', root);

  clock.advance(-2 * DAY);
  await refuses(
    'not valid yet',
    int,
    [root],
    /^certificate 0 of the path \(the imported certificate, O=Operator, CN=int\) is not valid before /,
  );

  clock.advance(2 * DAY + 60 * DAY);
  await refuses(
    'an expired root in the chain',
    longInt,
    [shortRoot],
    /^certificate 1 of the path \(--chain certificate 1, O=Operator, CN=short-root\) expired on /,
  );
  await refuses(
    'an expired imported intermediate',
    shortInt,
    [shortRoot],
    /^certificate 0 of the path \(the imported certificate, O=Operator, CN=short-int\) expired on /,
  );
});

t.test('checkImportPath alone: the first failure in path order is the one reported', async (t) => {
  const dir = await tempDir(t);
  const root = await opCa(dir, 'root', undefined, { keyUsage: null });
  const int = await opCa(dir, 'int', root, { ca: false, keyUsage: 'digitalSignature' });
  const path = [
    { cert: new X509Certificate(int.pem), given: 'the imported certificate' },
    { cert: new X509Certificate(root.pem), given: '--chain certificate 1' },
  ];
  t.throws(() => checkImportPath(path, Date.now(), 0), {
    code: 'MESH_E_CA_IMPORT_INVALID',
    details: { index: 0, subject: 'O=Operator, CN=int' },
  });
  t.throws(() => checkImportPath(path.slice(1), Date.now(), 1), {
    code: 'MESH_E_CA_IMPORT_INVALID',
    message: /no keyUsage extension/,
    details: { index: 0 },
  });
  const good = new X509Certificate((await opCa(dir, 'ok', undefined)).pem);
  t.doesNotThrow(() => checkImportPath([{ cert: good, given: 'the imported certificate' }], Date.now(), 1), 'a good root passes');
});
