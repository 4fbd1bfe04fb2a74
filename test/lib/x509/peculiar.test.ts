/**
 * webSigner: the PKCS#8 DER it exports to import a Node key into WebCrypto
 * is zeroed once the CryptoKey exists, and the key still signs.
 */
import { type KeyObject, webcrypto } from 'node:crypto';
import t from 'tap';
import { newKeyPair } from '../../../lib/secret-files.js';
import { webSigner } from '../../../lib/x509/peculiar.js';

t.test('the exported PKCS#8 DER is zeroed after the import', async (t) => {
  const pair = newKeyPair();
  const exported: Buffer[] = [];
  // The key as webSigner sees it, recording the buffer its export hands out.
  const watched = {
    asymmetricKeyType: pair.privateKey.asymmetricKeyType,
    asymmetricKeyDetails: pair.privateKey.asymmetricKeyDetails,
    export: (options: { type: 'pkcs8'; format: 'der' }) => {
      const der = pair.privateKey.export(options);
      exported.push(der);
      return der;
    },
  } as unknown as KeyObject;

  const signer = await webSigner(watched);
  t.equal(exported.length, 1, 'one export');
  const der = exported[0] as Buffer;
  t.ok(der.length > 100, 'of a whole PKCS#8 key');
  t.ok(
    der.every((b) => b === 0),
    'every byte is zero',
  );

  const data = Buffer.from('signed after the wipe');
  const signature = await webcrypto.subtle.sign(signer.signingAlgorithm, signer.privateKey, data);
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    pair.publicKey.export({ type: 'spki', format: 'der' }),
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['verify'],
  );
  t.ok(await webcrypto.subtle.verify(signer.signingAlgorithm, publicKey, signature, data), 'the imported key still signs');
});

t.test('the DER is zeroed when the import fails too', async (t) => {
  const exported: Buffer[] = [];
  const broken = {
    asymmetricKeyType: 'ec',
    asymmetricKeyDetails: { namedCurve: 'prime256v1' },
    export: () => {
      const der = Buffer.from('3003020100', 'hex'); // not a PKCS#8 key
      exported.push(der);
      return der;
    },
  } as unknown as KeyObject;
  await t.rejects(webSigner(broken));
  t.same(exported[0], Buffer.alloc(5), 'zeroed');
});
