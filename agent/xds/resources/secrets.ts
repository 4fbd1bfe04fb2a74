/**
 * SDS secrets: one tls_certificate per local identity (named by its SPIFFE ID)
 * and one validation_context with the trust bundle (`ROOTCA`). Rotation is a
 * new version of the same names.
 */
import { identitySecretName, TRUST_BUNDLE_SECRET_NAME } from '../names.js';
import type { XdsResource } from './common.js';

export function buildIdentitySecret(spiffeId: string, chainPem: string, keyPem: string): XdsResource {
  return {
    name: identitySecretName(spiffeId),
    tls_certificate: { certificate_chain: { inline_string: chainPem }, private_key: { inline_string: keyPem } },
  };
}

export function buildBundleSecret(bundlePem: string): XdsResource {
  return { name: TRUST_BUNDLE_SECRET_NAME, validation_context: { trusted_ca: { inline_string: bundlePem } } };
}
