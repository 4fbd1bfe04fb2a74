import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { installPeerCertificateCache } from '../../../controlplane/api/peer-cert-cache.js';
import { createTestCa } from '../../support/test-ca.js';

const ca = await createTestCa('peer.example');
const server = ca.issue('spiffe://peer.example/mesh/controlplane');
const client = ca.issue('spiffe://peer.example/mesh/node/vm1');

/** Connects a client with its certificate and returns the server's view of it. */
async function connect(t: Test, maxVersion: tls.SecureVersion) {
  const accepted: TLSSocket[] = [];
  const srv = tls.createServer(
    { cert: server.chainPem, key: server.keyPem, ca: ca.bundlePem, requestCert: true, rejectUnauthorized: true },
    (s) => {
      accepted.push(s);
    },
  );
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const socket = tls.connect({
    port: (srv.address() as AddressInfo).port,
    host: '127.0.0.1',
    cert: client.chainPem,
    key: client.keyPem,
    ca: ca.bundlePem,
    maxVersion,
    checkServerIdentity: () => undefined,
  });
  await once(socket, 'secureConnect');
  while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
  t.teardown(() => {
    socket.destroy();
    srv.close();
  });
  return accepted[0] as TLSSocket;
}

t.test('the peer certificate is built once per TLS 1.3 connection, every time for TLS 1.2 and detailed asks', async (t) => {
  installPeerCertificateCache();
  installPeerCertificateCache(); // idempotent

  const s13 = await connect(t, 'TLSv1.3');
  t.equal(s13.getProtocol(), 'TLSv1.3');
  const first = s13.getPeerCertificate();
  t.equal(s13.getPeerCertificate(), first, 'the same object on the second call');
  t.equal(first.subjectaltname, 'URI:spiffe://peer.example/mesh/node/vm1');
  const detailed = s13.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
  t.not(detailed, first, 'a detailed ask is not cached');
  t.ok(detailed.issuerCertificate, 'and is detailed');

  const s12 = await connect(t, 'TLSv1.2');
  t.equal(s12.getProtocol(), 'TLSv1.2');
  const a = s12.getPeerCertificate();
  const b = s12.getPeerCertificate();
  t.not(a, b, 'TLS 1.2 can renegotiate: asked every time');
  t.same(a.raw, b.raw);
});
