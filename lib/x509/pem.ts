/** PEM <-> DER. */
import { MeshError } from '../errors.js';

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every PEM block of the given label in text, in order, as DER. */
export function fromPemAll(text: string, label = 'CERTIFICATE'): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+?)-----END ${label}-----`, 'g');
  const out: Buffer[] = [];
  for (const match of text.matchAll(re)) out.push(Buffer.from((match[1] ?? '').replace(/\s+/g, ''), 'base64'));
  return out;
}

export function fromPem(text: string, label = 'CERTIFICATE', what = 'PEM input'): Buffer {
  const [first] = fromPemAll(text, label);
  if (first === undefined) {
    throw new MeshError('MESH_E_CERT_INVALID', `${what} holds no "${label}" PEM block`, { details: { label } });
  }
  return first;
}
