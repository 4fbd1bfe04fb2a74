/**
 * A small DER (ASN.1) encoder and reader: enough for X.509 certificates and
 * PKCS#10 requests. Leaf SVIDs are issued from a fixed template with these
 * helpers and signed with a KeyObject parsed once, which is what makes
 * thousands of durable issuances per second possible (bench/x509-sign.ts: one
 * leaf in about 0.3 ms this way, about 5 ms with @peculiar/x509). The reader
 * takes untrusted input (CSRs, peer certificates) and accepts strict DER only.
 */

export const Tag = Object.freeze({
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
});

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(content.length), content]);
}

export const seq = (...children: Uint8Array[]): Buffer => tlv(Tag.SEQUENCE, Buffer.concat(children));
export const set = (...children: Uint8Array[]): Buffer => tlv(Tag.SET, Buffer.concat(children));
export const octets = (content: Uint8Array): Buffer => tlv(Tag.OCTET_STRING, content);
export const utf8 = (text: string): Buffer => tlv(Tag.UTF8_STRING, Buffer.from(text, 'utf8'));
export const ia5 = (text: string): Buffer => tlv(Tag.IA5_STRING, Buffer.from(text, 'ascii'));
export const bool = (value: boolean): Buffer => tlv(Tag.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
export const nullValue = (): Buffer => Buffer.from([Tag.NULL, 0x00]);
/** A BIT STRING with no unused bits. */
export const bits = (content: Uint8Array): Buffer => tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([0]), content]));
/** Context-specific tag [n]; constructed for EXPLICIT tagging and SEQUENCE-like IMPLICIT ones. */
export const ctx = (n: number, content: Uint8Array, constructed = true): Buffer => tlv((constructed ? 0xa0 : 0x80) | n, content);

/** A non-negative INTEGER from big-endian magnitude bytes (leading zero added when needed). */
export function uint(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = Buffer.from(magnitude.subarray(start));
  const first = trimmed[0] ?? 0;
  return tlv(Tag.INTEGER, first & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed.length === 0 ? Buffer.from([0]) : trimmed);
}

export const smallInt = (n: number): Buffer => uint(Buffer.from([n]));

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const bytes: number[] = [];
  // The first two arcs make one subidentifier (40 * a + b), base 128 like the others (X.690 8.19.4).
  for (const part of [40 * a + b, ...rest]) {
    const chunk: number[] = [];
    let n = part;
    do {
      chunk.unshift(n & 0x7f);
      n = Math.floor(n / 128);
    } while (n > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] ?? 0) | 0x80;
    bytes.push(...chunk);
  }
  return tlv(Tag.OID, Buffer.from(bytes));
}

/** UTCTime until 2049, GeneralizedTime after, as RFC 5280 requires; whole seconds. */
export function time(date: Date): Buffer {
  const iso = date.toISOString();
  const compact = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return date.getUTCFullYear() < 2050 ? tlv(Tag.UTC_TIME, Buffer.from(compact.slice(2))) : tlv(Tag.GENERALIZED_TIME, Buffer.from(compact));
}

export interface Node {
  tag: number;
  /** The whole TLV. */
  raw: Buffer;
  /** The value bytes. */
  content: Buffer;
}

export class DerError extends Error {}

/**
 * Reads one TLV at offset; throws DerError on truncated or malformed input.
 * Strict DER, since this reads untrusted input (CSRs, peer certificates):
 * low tag numbers only (no tag-31 form), definite lengths in their minimal
 * form (no indefinite length, no long form under 128, no leading zero
 * length bytes), at most 4 length bytes.
 */
export function read(buf: Buffer, offset = 0): Node & { end: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated DER');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('bad DER tag: high tag numbers are not accepted');
  let length = buf[offset + 1] as number;
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerError('bad DER length: indefinite length');
    if (count > 4 || offset + 2 + count > buf.length) throw new DerError('bad DER length');
    if (buf[offset + 2] === 0) throw new DerError('bad DER length: leading zero length byte');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[offset + 2 + i] as number);
    if (length < 0x80) throw new DerError('bad DER length: long form for a length under 128');
    header += count;
  }
  const end = offset + header + length;
  if (end > buf.length) throw new DerError('truncated DER');
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + header, end), end };
}

/** Reads exactly one TLV that fills buf: trailing bytes are an error naming `what`. */
export function readOne(buf: Buffer, what: string): Node {
  const node = read(buf);
  if (node.end !== buf.length) throw new DerError(`trailing bytes after the ${what}`);
  return node;
}

/** The child TLVs of a constructed value. */
export function children(node: Node): Node[] {
  const out: Node[] = [];
  let offset = 0;
  while (offset < node.content.length) {
    const child = read(node.content, offset);
    out.push(child);
    offset = child.end;
  }
  return out;
}

export function expectTag(node: Node | undefined, tag: number, what: string): Node {
  if (node === undefined || node.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}`);
  return node;
}

/**
 * The dotted form of an OBJECT IDENTIFIER. Refused: an empty value, a last
 * byte with the continuation bit (truncated), a subidentifier with a leading
 * 0x80 byte (not minimal), and arcs past 2^53 (not exact in a number).
 */
export function decodeOid(node: Node): string {
  const content = node.content;
  if (content.length === 0) throw new DerError('bad OID: empty');
  if ((content[content.length - 1] as number) & 0x80) throw new DerError('bad OID: truncated subidentifier');
  const subidentifiers: number[] = [];
  let n = 0;
  let start = true;
  for (const b of content) {
    if (start && b === 0x80) throw new DerError('bad OID: subidentifier not minimally encoded');
    start = false;
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER) throw new DerError('bad OID: arc too large');
    if (!(b & 0x80)) {
      subidentifiers.push(n);
      n = 0;
      start = true;
    }
  }
  // The first subidentifier holds two arcs; under arc 2 the second arc may be 40 or more.
  const [first = 0, ...rest] = subidentifiers;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...rest].join('.');
}
