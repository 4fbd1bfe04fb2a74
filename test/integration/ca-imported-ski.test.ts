/**
 * Imported CAs whose subject key identifier is not a SHA-1 of their key: a
 * root with an explicit SKI (openssl `subjectKeyIdentifier=<hex>`) and an
 * intermediate with a Go-style one (SHA-256 of the key bits, truncated to 160
 * bits). The control plane imports each, activates it and issues workload
 * SVIDs; every certificate it issues carries the issuer's SKI as written as
 * its AKI, and `openssl verify`, go-spiffe and a real Envoy (mTLS between two
 * workloads) all accept the chains.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { buildBootstrap } from '../../agent/envoy/bootstrap.js';
import { createSnapshotCache } from '../../agent/xds/cache/snapshot-cache.js';
import { startAdsServer } from '../../agent/xds/server/ads-server.js';
import type { Identities } from '../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../agent/xds/snapshot-build.js';
import { systemClock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/logger.js';
import { certFields, keyIdentifier, subjectKeyIdentifier } from '../../lib/x509/cert-info.js';
import { children, read } from '../../lib/x509/der.js';
import { fromPemAll } from '../../lib/x509/pem.js';
import { freshCsr, joinedClient, startTestControlPlane } from '../support/controlplane.js';
import { startEnvoy } from '../support/envoy.js';
import { type EchoAnswer, getJson, startEchoApp, xfccUri } from '../support/mesh-apps.js';
import { issuedCert, openssl, opensslKey, selfSignedCert } from '../support/openssl.js';
import { freePorts } from '../support/ports.js';
import { opensslVerify, verifySvid } from '../support/svid-verify.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { webApiModel } from '../support/web-api-model.js';

t.setTimeout(240_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;
const ROOT_SKI = '0123456789abcdef0123456789abcdef01234567';

/** How Go's crypto/x509 (1.25+) derives a SKI: SHA-256 of the subjectPublicKey bits, first 160 bits. */
function goStyleSki(publicKeyPem: string): string {
  const spki = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  const [, keyBits] = children(read(spki));
  return createHash('sha256')
    .update((keyBits as { content: Buffer }).content.subarray(1))
    .digest()
    .subarray(0, 20)
    .toString('hex');
}

const CA_EXT = ['basicConstraints = critical,CA:true', 'keyUsage = critical,keyCertSign,cRLSign', `subjectAltName = URI:spiffe://${TD}`];

/** A self-signed CA <name>.pem/.key of the operator with the extensions given. */
const operatorCa = (dir: string, name: string, ext: string[]) =>
  selfSignedCert(dir, name, { subject: `/O=Operator/CN=${name}`, ext, days: 30 });

/** Operator CAs made with openssl: root.pem/key with an explicit SKI; int.pem/key under it with a Go-style SKI. */
async function operatorCas(dir: string): Promise<{ rootPem: string; intPem: string; intSki: string }> {
  const root = await operatorCa(dir, 'root', [...CA_EXT, `subjectKeyIdentifier = ${ROOT_SKI}`]);
  const intKey = await opensslKey(dir, 'int');
  const intSki = goStyleSki(await openssl(['pkey', '-in', intKey, '-pubout']));
  const int = await issuedCert(dir, 'int', root, {
    subject: '/O=Operator/CN=int',
    key: { file: intKey },
    serial: '77',
    days: 20,
    ext: [...CA_EXT, 'basicConstraints = critical,CA:true,pathlen:0', `subjectKeyIdentifier = ${intSki}`, 'authorityKeyIdentifier = keyid'],
  });
  return { rootPem: root.pem, intPem: int.pem, intSki };
}

/** The authority key identifier's keyIdentifier of a certificate, hex. */
function akiOf(der: Buffer): string {
  const value = certFields(der).extensions.get('2.5.29.35')?.value as Buffer;
  return (children(read(value))[0] as { content: Buffer }).content.toString('hex');
}

/** Workload SVIDs for web and api from a control plane whose active CA is the imported one. */
async function importAndIssue(t: Test, dir: string, imported: { cert: string; key: string; chain: string }): Promise<Identities> {
  const tcp = await startTestControlPlane({ trustDomain: TD });
  t.teardown(() => tcp.stop());
  await tcp.cp.ca.importCa(
    await readFile(path.join(dir, imported.cert), 'utf8'),
    await readFile(path.join(dir, imported.key), 'utf8'),
    imported.chain === '' ? '' : await readFile(path.join(dir, imported.chain), 'utf8'),
  );
  await tcp.cp.ca.activate();
  const client = await joinedClient(tcp, 'vm1', [WEB, API], path.join(dir, 'agent'));
  t.teardown(() => client.close());
  const certs = new Map<string, { chainPem: string; keyPem: string }>();
  for (const id of [WEB, API]) {
    const { key, csr } = await freshCsr();
    const svid = await client.signWorkload(id, csr);
    certs.set(id, { chainPem: svid.chainPem, keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
  }
  return { certs, bundlePem: await readFile(path.join(dir, 'root.pem'), 'utf8') };
}

async function checkChains(t: Test, identities: Identities): Promise<void> {
  for (const [id, { chainPem }] of identities.certs) {
    for (const purpose of ['sslclient', 'sslserver'] as const) {
      const r = await opensslVerify(chainPem, identities.bundlePem, purpose);
      t.ok(r.ok, `openssl verify -purpose ${purpose} ${id}: ${r.output}`);
    }
    t.match(await verifySvid(chainPem, identities.bundlePem), { ok: true, spiffe_id: id }, `go-spiffe accepts ${id}`);
  }
}

/** web -> api through one real Envoy: both SVIDs are checked by Envoy (server and client side). */
async function checkEnvoy(t: Test, identities: Identities): Promise<void> {
  const dir = await tempDir(t);
  const webApp = await startEchoApp('web');
  const apiApp = await startEchoApp('api');
  t.teardown(() => Promise.all([webApp.close(), apiApp.close()]));
  const [apiMesh, webMesh, local] = (await freePorts(3)) as [number, number, number];
  const cache = createSnapshotCache();
  const ads = await startAdsServer({ socketPath: path.join(dir, 'ads.sock'), clock: systemClock, log: silentLogger, cache });
  t.teardown(() => ads.close());
  const model = webApiModel(TD, { webApp: webApp.port, apiApp: apiApp.port, webMesh, apiMesh, local });

  cache.setSnapshot('vm-1', buildSnapshot(model, identities));
  const envoy = await startEnvoy({
    bootstrap: buildBootstrap({ nodeName: 'vm-1', adminPort: 0, adsSocket: path.join(dir, 'ads.sock'), api: 'delta' }),
  });
  t.teardown(() => envoy.stop());
  const answer = await waitFor(() => getJson<EchoAnswer>(local).catch(() => undefined), {
    timeoutMs: 20_000,
    what: 'web -> api through Envoy',
  });
  t.equal(answer.app, 'api', 'Envoy carried web -> api over mTLS with the imported CA chains');
  t.equal(xfccUri(answer.xfcc), WEB, 'api saw the caller SPIFFE ID');
}

t.test('an imported root with an explicit SKI: our signing CA names it as AKI; the chains verify everywhere', async (t) => {
  const dir = await tempDir(t);
  const { rootPem } = await operatorCas(dir);
  const rootDer = fromPemAll(rootPem)[0] as Buffer;
  t.equal(subjectKeyIdentifier(rootDer)?.toString('hex'), ROOT_SKI, 'the root carries the explicit SKI');
  const identities = await importAndIssue(t, dir, { cert: 'root.pem', key: 'root.key', chain: '' });
  const [leaf, signer] = fromPemAll(identities.certs.get(WEB)?.chainPem ?? '');
  t.equal(akiOf(signer as Buffer), ROOT_SKI, "the signing CA's AKI is the root's SKI as written");
  t.equal(akiOf(leaf as Buffer), subjectKeyIdentifier(signer as Buffer)?.toString('hex'), "the leaf's AKI is the signing CA's SKI");
  await checkChains(t, identities);
  await checkEnvoy(t, identities);
});

t.test('an imported intermediate with a Go-style (truncated SHA-256) SKI signs leaves that name it as AKI', async (t) => {
  const dir = await tempDir(t);
  const { intPem, intSki } = await operatorCas(dir);
  const intDer = fromPemAll(intPem)[0] as Buffer;
  t.equal(subjectKeyIdentifier(intDer)?.toString('hex'), intSki, 'the intermediate carries the Go-style SKI');
  t.not(intSki, keyIdentifier(certFields(intDer).spki).toString('hex'), 'which is not the SHA-1 of the key');
  const identities = await importAndIssue(t, dir, { cert: 'int.pem', key: 'int.key', chain: 'root.pem' });
  for (const [id, { chainPem }] of identities.certs) {
    const [leaf, issuer] = fromPemAll(chainPem);
    t.same(issuer, intDer, `${id}: issued by the imported intermediate`);
    t.equal(akiOf(leaf as Buffer), intSki, `${id}: AKI is the intermediate's Go-style SKI`);
  }
  await checkChains(t, identities);
  await checkEnvoy(t, identities);
});

t.test('an imported CA without a subjectKeyIdentifier is refused', async (t) => {
  const dir = await tempDir(t);
  const { pem, key } = await operatorCa(dir, 'bare', [...CA_EXT, 'subjectKeyIdentifier = none', 'authorityKeyIdentifier = none']);
  t.equal(subjectKeyIdentifier(fromPemAll(pem)[0] as Buffer), undefined, 'openssl made it without a SKI');
  const tcp = await startTestControlPlane({ trustDomain: TD });
  t.teardown(() => tcp.stop());
  await t.rejects(tcp.cp.ca.importCa(pem, await readFile(key, 'utf8'), ''), {
    code: 'MESH_E_CA_IMPORT_INVALID',
    message: /has no subjectKeyIdentifier extension; every certificate the CA issues names it as its authority key identifier/,
  });
  t.equal(tcp.cp.ca.all().length, 1, 'nothing imported');
});
