/**
 * meshctl cert inspect, in-process through the meshctl program: a whole SVID
 * chain (leaf, signing CA, root) from the CA's own code, a broken chain, an
 * expired certificate (injected clock), and the errors for a missing file, a
 * file with no certificate and a garbage certificate.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { certInspectCommand, type InspectReport } from '../../../controlplane/cli/cert-inspect.js';
import { meshctlProgram } from '../../../controlplane/cli/program.js';
import type { Program } from '../../../lib/cli.js';
import { certFields, keyIdentifier } from '../../../lib/x509/cert-info.js';
import { fromPemAll, toPem } from '../../../lib/x509/pem.js';
import { runProgram } from '../../support/cli.js';
import { tempDir } from '../../support/temp-dir.js';
import { createTestCa } from '../../support/test-ca.js';

const WEB = 'spiffe://inspect.example/ns/default/sa/web';

const meshctl = (argv: string[], program: Program = meshctlProgram()) => runProgram(program, argv);

const dir = await tempDir(t, 'mesh-inspect-');
const ca = await createTestCa('inspect.example');
const svid = ca.issue(WEB);
const chainFile = path.join(dir, 'chain.pem');
await writeFile(chainFile, svid.chainPem + ca.bundlePem);

t.test('a whole chain: every certificate, and the chain links', async (t) => {
  const r = await meshctl(['cert', 'inspect', chainFile, '--json']);
  t.equal(r.code, 0, r.err);
  const report = JSON.parse(r.out) as InspectReport;
  t.equal(report.file, chainFile);
  t.same(report.chain, { links: true, endsAtSelfSigned: true });
  const [leaf, signer, root] = report.certificates;
  const ders = fromPemAll(svid.chainPem + ca.bundlePem);
  const ski = (i: number) => keyIdentifier(certFields(ders[i] as Buffer).spki).toString('hex');
  t.match(leaf, {
    index: 1,
    spiffeIds: [WEB],
    subject: 'O=SPIFFE',
    serial: svid.serial,
    validity: 'valid',
    ca: false,
    pathLength: null,
    selfSigned: false,
    issuedByNext: true,
    linkProblem: null,
    subjectKeyId: ski(0),
    authorityKeyId: ski(1),
  });
  t.equal(leaf?.issuer, signer?.subject);
  t.match(signer, {
    index: 2,
    spiffeIds: ['spiffe://inspect.example'],
    ca: true,
    pathLength: 0,
    selfSigned: false,
    issuedByNext: true,
    authorityKeyId: ski(2),
  });
  t.match(root, { index: 3, ca: true, pathLength: null, selfSigned: true, issuedByNext: null, authorityKeyId: null, subjectKeyId: ski(2) });
  t.match(leaf?.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  const human = await meshctl(['cert', 'inspect', chainFile]);
  t.equal(human.code, 0, human.err);
  t.match(human.out, `${chainFile}: 3 certificates\n`);
  t.match(human.out, /\n\[1\] leaf\n {2}SPIFFE ID {3}spiffe:\/\/inspect\.example\/ns\/default\/sa\/web\n/);
  t.match(human.out, /\n\[2\] CA \(pathLen 0\)\n/);
  t.match(human.out, /\n\[3\] CA, self-signed root\n/);
  t.match(human.out, /\n {2}issued by \[2\] yes\n/);
  t.match(human.out, /\(valid\)\n/);
  t.match(human.out, /\n {2}SKI {9}([0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
  t.match(human.out, /\nchain: links \(each certificate is issued by the next; ends at a self-signed certificate\)\n$/);
});

t.test('a broken chain and an expired certificate', async (t) => {
  const other = await createTestCa('inspect.example');
  const broken = path.join(dir, 'broken.pem');
  await writeFile(broken, `${fromPemAll(svid.chainPem).map((d) => toPem(d))[0]}${other.bundlePem}`);
  const r = await meshctl(['cert', 'inspect', broken, '--json']);
  t.equal(r.code, 0, 'inspecting is not verifying: exit 0');
  const report = JSON.parse(r.out) as InspectReport;
  t.equal(report.chain.links, false);
  t.equal(report.certificates[0]?.issuedByNext, false);
  t.match(report.certificates[0]?.linkProblem, /is not the next certificate's subject/);
  const human = await meshctl(['cert', 'inspect', broken]);
  t.match(human.out, /issued by \[2\] NO: its issuer/);
  t.match(human.out, /chain: BROKEN/);

  const later = { ...meshctlProgram(), commands: [certInspectCommand(() => Date.now() + 400 * 86_400_000)] };
  const expired = JSON.parse((await meshctl(['cert', 'inspect', chainFile, '--json'], later)).out) as InspectReport;
  t.same(
    expired.certificates.map((c) => c.validity),
    ['expired', 'expired', 'expired'],
  );
  const earlier = { ...meshctlProgram(), commands: [certInspectCommand(() => Date.now() - 86_400_000)] };
  t.match((await meshctl(['cert', 'inspect', chainFile], earlier)).out, /\(not yet valid\)/);
});

t.test('errors name the file: missing, no certificate, garbage; usage', async (t) => {
  const missing = path.join(dir, 'nope.pem');
  const none = path.join(dir, 'none.pem');
  const garbage = path.join(dir, 'garbage.pem');
  await writeFile(none, 'just text\n');
  await writeFile(garbage, svid.chainPem + toPem(Buffer.from('not a certificate at all')));
  const cases: Array<[string, RegExp]> = [
    [missing, /^meshctl: MESH_E_CERT_INVALID: .*nope\.pem: cannot be read \(ENOENT\)\n$/],
    [none, /^meshctl: MESH_E_CERT_INVALID: .*none\.pem: holds no certificate/],
    [garbage, /^meshctl: MESH_E_CERT_INVALID: .*garbage\.pem: certificate 3 cannot be parsed/],
  ];
  for (const [file, message] of cases) {
    const r = await meshctl(['cert', 'inspect', file]);
    t.equal(r.code, 1, file);
    t.match(r.err, message);
    t.equal(r.out, '');
  }
  const usage = await meshctl(['cert', 'inspect']);
  t.equal(usage.code, 2);
  t.match(usage.err, /MESH_E_USAGE: cert inspect: give exactly one PEM FILE/);
  const help = await meshctl(['--help']);
  t.match(help.out, /\n {2}cert inspect +print every certificate of a PEM file/);
});
