/**
 * The independent SVID checkers the CA tests rely on (test/support/svid-verify.ts)
 * must accept a good X.509-SVID and really reject bad ones. Certificates are
 * made here with the openssl CLI, not with our own code, so a bug in the mesh's
 * certificate code cannot hide a bug in the checkers.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { issuedCert, type OpensslCert, selfSignedCert } from '../support/openssl.js';
import { opensslVerify, splitPemChain, verifySvid } from '../support/svid-verify.js';
import { tools } from '../support/tools.js';

t.setTimeout(180_000);

const WEB = 'spiffe://example.org/ns/default/sa/web';
const DB = 'spiffe://example.org/ns/default/sa/db';

/** A self-signed root of the trust domain: CA:true, keyCertSign, URI SAN spiffe://example.org. */
function makeRoot(dir: string, name: string): Promise<OpensslCert> {
  return selfSignedCert(dir, name, {
    subject: `/O=mesh-test/CN=${name}`,
    days: 2,
    ext: [
      'basicConstraints = critical,CA:true',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectAltName = URI:spiffe://example.org',
      'subjectKeyIdentifier = hash',
    ],
  });
}

/** A certificate for a CSR of a fresh key, signed by `issuer`, with the given extensions. */
function makeCert(dir: string, name: string, issuer: OpensslCert, extensions: string[], serial: string): Promise<OpensslCert> {
  return issuedCert(dir, name, issuer, {
    subject: `/O=mesh-test/CN=${name}`,
    serial: `0x${serial}`,
    days: 1,
    ext: [...extensions, 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'],
  });
}

/** A positive 128-bit serial without a leading zero digit, upper-case hex as go-spiffe prints it. */
const serial = () => `${(0x10 + ((randomBytes(1)[0] ?? 0) % 0x70)).toString(16)}${randomBytes(15).toString('hex')}`.toUpperCase();

const leafExt = (sans: string, ca = false) => [
  `basicConstraints = critical,CA:${ca ? 'true' : 'false'}`,
  'keyUsage = critical,digitalSignature',
  'extendedKeyUsage = serverAuth,clientAuth',
  `subjectAltName = ${sans}`,
];

t.test('a good X.509-SVID passes go-spiffe and openssl; bad ones fail with go-spiffe errors', async (t) => {
  const info = (await tools()).svidVerify;
  t.match(info.version, /^2\.\d+\.\d+$/, `go-spiffe ${info.version}`);
  const dir = t.testdir({});
  const root = await makeRoot(dir, 'root');
  const otherRoot = await makeRoot(dir, 'other-root');

  const webSerial = serial();
  const web = await makeCert(dir, 'web', root, leafExt(`URI:${WEB}`), webSerial);
  const good = await verifySvid(web.pem, root.pem);
  t.match(good, {
    ok: true,
    spiffe_id: WEB,
    chains: 1,
    leaf: {
      serial: webSerial,
      is_ca: false,
      key_usage: ['digitalSignature'],
      ext_key_usage: ['serverAuth', 'clientAuth'],
      uri_sans: [WEB],
      dns_sans: [],
    },
  });
  if (good.ok) {
    const lifetime = Date.parse(good.leaf.not_after) - Date.parse(good.leaf.not_before);
    t.equal(lifetime, 86_400_000, 'not_before and not_after are RFC 3339 times one day apart');
  }
  for (const purpose of ['sslclient', 'sslserver'] as const) {
    const checked = await opensslVerify(web.pem, root.pem, purpose);
    t.ok(checked.ok, `openssl verify -purpose ${purpose}: ${checked.output}`);
  }

  const expired = await verifySvid(web.pem, root.pem, { at: new Date(Date.now() + 3 * 86_400_000) });
  t.match(expired, { ok: false, error: /^x509svid: could not verify leaf certificate: x509: certificate has expired/ }, '--at is used');

  const stranger = await makeCert(dir, 'stranger', otherRoot, leafExt(`URI:${WEB}`), serial());
  t.match(
    await verifySvid(stranger.pem, root.pem),
    { ok: false, error: /^x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority/ },
    'a leaf signed by another root',
  );
  const strangerSsl = await opensslVerify(stranger.pem, root.pem, 'sslserver');
  t.notOk(strangerSsl.ok, 'openssl rejects it too');
  t.match(strangerSsl.output, /unable to get local issuer certificate/);

  const twoIds = await makeCert(dir, 'two-ids', root, leafExt(`URI:${WEB},URI:${DB}`), serial());
  t.same(
    await verifySvid(twoIds.pem, root.pem),
    { ok: false, error: 'x509svid: could not get leaf SPIFFE ID: certificate contains more than one URI SAN' },
    'a leaf with two URI SANs',
  );

  const caLeaf = await makeCert(dir, 'ca-leaf', root, leafExt(`URI:${WEB}`, true), serial());
  t.same(
    await verifySvid(caLeaf.pem, root.pem),
    { ok: false, error: 'x509svid: leaf certificate with CA flag set to true' },
    'a leaf with CA:true',
  );

  t.same(await verifySvid('', root.pem), { ok: false, error: 'x509svid: empty certificates chain' }, 'an empty chain');
});

t.test('a chain through an intermediate: verified with it, rejected without it', async (t) => {
  const dir = t.testdir({});
  const root = await makeRoot(dir, 'root');
  const intermediate = await makeCert(
    dir,
    'intermediate',
    root,
    ['basicConstraints = critical,CA:true', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectAltName = URI:spiffe://example.org'],
    serial(),
  );
  const web = await makeCert(dir, 'web', intermediate, leafExt(`URI:${WEB}`), serial());
  const chain = web.pem + intermediate.pem;
  t.equal(splitPemChain(chain).length, 2);

  t.match(await verifySvid(chain, root.pem), { ok: true, spiffe_id: WEB, chains: 1 });
  const ssl = await opensslVerify(chain, root.pem, 'sslclient');
  t.ok(ssl.ok, `openssl verify with -untrusted: ${ssl.output}`);

  t.match(await verifySvid(web.pem, root.pem), { ok: false, error: /certificate signed by unknown authority/ }, 'leaf alone');
  t.notOk((await opensslVerify(web.pem, root.pem, 'sslclient')).ok, 'openssl: leaf alone fails');
  t.match(
    await verifySvid(chain, intermediate.pem),
    { ok: true },
    'an intermediate in the bundle is trusted as an anchor (go-spiffe does not require self-signed roots)',
  );
});
