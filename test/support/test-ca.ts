/**
 * A throwaway CA for data-plane tests that do not need the whole control
 * plane: the control plane's own certificate code (root + signing CA, leaves
 * with one URI SAN), real P-256 keys, one trust domain per CA.
 */
import { X509Certificate } from 'node:crypto';
import type { IdentityMaterial } from '../../agent/xds/snapshot.js';
import { type Generation, generationFromRow, issueLeaf } from '../../controlplane/ca/authority.js';
import { createCaPair } from '../../controlplane/ca/ca-certificates.js';
import { silentLogger } from '../../lib/logger.js';
import { newKeyPair } from '../../lib/secret-files.js';
import { toPem } from '../../lib/x509/pem.js';

export interface TestCa {
  readonly trustDomain: string;
  readonly bundlePem: string;
  /** The signing generation, for tests of the signer itself. */
  readonly generation: Generation;
  /** A new key and leaf for the SPIFFE ID (chain = leaf + signing CA). */
  issue(spiffeId: string, ttlMs?: number): IdentityMaterial & { serial: string };
}

export async function createTestCa(trustDomain: string): Promise<TestCa> {
  const now = Date.now();
  const rootKey = newKeyPair();
  const signerKey = newKeyPair();
  const pair = await createCaPair({ trustDomain, label: 'test', now, rootKey, signerKey, rootTtlMs: 86_400_000, signerTtlMs: 86_400_000 });
  const gen = generationFromRow(
    {
      id: 1,
      state: 'active',
      source: 'generated',
      root_pem: pair.rootPem,
      signer_pem: pair.signerPem,
      chain_pem: '',
      signer_key_file: '',
      root_key_file: null,
      created_at: now,
      activated_at: now,
      retired_at: null,
    },
    signerKey.privateKey,
    silentLogger,
  );
  return {
    trustDomain,
    bundlePem: pair.rootPem,
    generation: gen,
    issue(spiffeId, ttlMs = 3_600_000) {
      const key = newKeyPair();
      const leaf = issueLeaf(gen, { spiffeId, spki: key.publicKey.export({ type: 'spki', format: 'der' }), ttlMs, now: Date.now() });
      return {
        chainPem: toPem(leaf.der) + pair.signerPem,
        keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        serial: new X509Certificate(leaf.der).serialNumber,
      };
    },
  };
}
