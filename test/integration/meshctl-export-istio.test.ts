/**
 * `meshctl ca export-intermediate --for istio` against a real control plane:
 * the four files of Istio's cacerts secret (the key 0600 and matching the
 * certificate), --json, the export in `ca status` and `audit`, no overwrite
 * without --force, and the usage errors. The certificate profile and the
 * leaf Istio signs with it are checked in
 * test/controlplane/ca/intermediate-export.test.ts; the Envoy interop in
 * test/integration/istio-interop.test.ts.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { runProgram } from '../support/cli.js';
import { startTestControlPlane } from '../support/controlplane.js';
import { splitPemChain } from '../support/svid-verify.js';
import { tempDir } from '../support/temp-dir.js';

t.setTimeout(120_000);

const tcp = await startTestControlPlane();
t.teardown(() => tcp.stop());
const ctl = (...argv: string[]) => runProgram(meshctlProgram(), [...argv, '--data-dir', tcp.dataDir]);

interface ExportJson {
  kind: string;
  out: string;
  files: { caCert: string; caKey: string; rootCert: string; certChain: string };
  generationId: number;
  rootGeneration: number;
  serial: string;
  notBefore: string;
  notAfter: string;
}

t.test('export writes the cacerts files, is listed by ca status and audited', async (t) => {
  const out = path.join(await tempDir(t, 'mesh-istio-'), 'cacerts');
  const r = await ctl('ca', 'export-intermediate', '--for', 'istio', '--out', out, '--ttl', '90d', '--json');
  t.equal(r.code, 0, r.err);
  const x = JSON.parse(r.out) as ExportJson;
  t.same(
    Object.values(x.files)
      .map((f) => path.basename(f))
      .sort(),
    ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem'],
  );
  t.equal(x.out, out);
  t.equal(x.kind, 'istio');
  t.equal((await stat(x.files.caKey)).mode & 0o777, 0o600, 'ca-key.pem is 0600');
  t.equal((await stat(out)).mode & 0o777, 0o700, 'the new folder is 0700');

  const cert = new X509Certificate(await readFile(x.files.caCert));
  t.ok(cert.checkPrivateKey(createPrivateKey(await readFile(x.files.caKey))), 'ca-key.pem is the key of ca-cert.pem');
  t.equal(cert.serialNumber, x.serial);
  t.equal(new Date(cert.validTo).toISOString(), x.notAfter);
  const days = (Date.parse(x.notAfter) - Date.now()) / 86_400_000;
  t.ok(days > 89.9 && days <= 90, `--ttl 90d: ${days.toFixed(3)} days`);
  const bundle = (await ctl('ca', 'bundle')).out;
  t.equal(await readFile(x.files.rootCert, 'utf8'), bundle, 'root-cert.pem is the trust bundle');
  const chain = splitPemChain(await readFile(x.files.certChain, 'utf8'));
  t.equal(chain.length, 2, 'cert-chain.pem: intermediate and root');
  t.equal(new X509Certificate(chain[0] as string).fingerprint256, cert.fingerprint256);
  const root = new X509Certificate(chain[1] as string);
  t.ok(cert.verify(root.publicKey) && bundle.includes((chain[1] as string).trim()), 'then the root that signed it, from the bundle');

  const status = await ctl('ca', 'status', '--json');
  const json = JSON.parse(status.out) as { exports: Array<Record<string, unknown>>; generations: unknown[] };
  t.match(json.exports.at(-1), { id: x.generationId, kind: 'istio', root_generation: x.rootGeneration, serial: x.serial });
  t.equal(json.generations.length, 1, 'no new root generation');
  const human = await ctl('ca', 'status');
  t.match(
    human.out,
    new RegExp(`${x.generationId}\\s+exported-intermediate \\(istio\\)\\s+${x.rootGeneration}\\s+${x.serial}\\s+${x.notAfter}`),
  );

  const audit = await ctl('audit', '--json');
  const entry = audit.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.action === 'ca.export-intermediate' && e.serial === x.serial);
  t.match(entry, { actor: 'admin', result: 'ok', spiffe_id: 'spiffe://example.org' });

  const human2 = await ctl('ca', 'export-intermediate', '--for', 'istio', '--out', path.join(out, 'again'));
  t.equal(human2.code, 0, human2.err);
  t.match(human2.out, /exported-intermediate \(istio\) \d+ under generation \d+: serial [0-9A-F]+, expires /);
  t.match(human2.out, /next: kubectl create secret generic cacerts -n istio-system --from-file=.*ca-cert\.pem/);
});

t.test('existing files are kept unless --force; nothing is exported then', async (t) => {
  const out = await tempDir(t, 'mesh-istio-');
  await writeFile(path.join(out, 'ca-key.pem'), 'keep me');
  const before = (JSON.parse((await ctl('ca', 'status', '--json')).out) as { exports: unknown[] }).exports.length;
  const refused = await ctl('ca', 'export-intermediate', '--for', 'istio', '--out', out);
  t.equal(refused.code, 1);
  t.match(refused.err, `MESH_E_OUTPUT_EXISTS: ${out} already has ca-key.pem; nothing was exported (--force replaces them)`);
  t.equal(await readFile(path.join(out, 'ca-key.pem'), 'utf8'), 'keep me', 'the file is untouched');
  t.equal((JSON.parse((await ctl('ca', 'status', '--json')).out) as { exports: unknown[] }).exports.length, before, 'no export recorded');
  const forced = await ctl('ca', 'export-intermediate', '--for', 'istio', '--out', out, '--force', '--json');
  t.equal(forced.code, 0, forced.err);
  t.not(await readFile(path.join(out, 'ca-key.pem'), 'utf8'), 'keep me', '--force replaces it');
  t.equal((await stat(path.join(out, 'ca-key.pem'))).mode & 0o777, 0o600);
});

t.test('usage errors name the flag', async (t) => {
  const out = await tempDir(t, 'mesh-istio-');
  const cases: Array<[string[], RegExp]> = [
    [['--out', out], /MESH_E_USAGE: ca export-intermediate: --for istio is required/],
    [['--for', 'linkerd', '--out', out], /MESH_E_USAGE: --for linkerd: only istio is supported/],
    [['--for', 'istio'], /MESH_E_USAGE: ca export-intermediate: --out DIR is required/],
    [['--for', 'istio', '--out', out, '--ttl', 'forever'], /MESH_E_USAGE: --ttl forever is not a positive duration/],
    [['--for', 'istio', '--out', out, '--ttl', '0d'], /MESH_E_USAGE: --ttl 0d/],
  ];
  for (const [argv, err] of cases) {
    const r = await ctl('ca', 'export-intermediate', ...argv);
    t.equal(r.code, 2, `${argv.join(' ')}: exit 2 (usage)`);
    t.match(r.err, err);
  }
  const help = await runProgram(meshctlProgram(), ['ca', 'export-intermediate', '--help']);
  t.equal(help.code, 0);
  t.match(help.out, /--for istio --out DIR/);
  t.match(help.out, /ca-key\.pem \(mode 0600\)/);
});
