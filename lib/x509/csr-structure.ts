/**
 * The structure of a PKCS#10 request (RFC 2986), read strictly from untrusted
 * bytes before any key is imported or signature checked. The control plane
 * takes only the public key from a CSR, but it reads the whole request, so
 * that what it accepts is a well-formed request for any other parser too
 * (the fuzz test holds it to @peculiar/x509): version 0; a Name whose values
 * are UTF8String, PrintableString or IA5String; attributes whose values are
 * plain DER of common types, nested at most 16 deep; a signature BIT STRING
 * with no unused bits. (parseCsr refuses algorithm parameters once it knows
 * the key type, so that a CSR of another key type is named as such.)
 */
import { children, DerError, decodeOid, expectTag, type Node, readOne, Tag } from './der.js';

export interface CsrParts {
  /** The DER of CertificationRequestInfo: what the signature covers. */
  info: Buffer;
  /** The DER of the SubjectPublicKeyInfo (checked by spki.ts). */
  spki: Buffer;
  /** The signature algorithm's OID. */
  algorithm: string;
  /** Whether the algorithm carries parameters (neither accepted algorithm has any). */
  algorithmParameters: boolean;
  signature: Buffer;
}

const ATTRIBUTES = 0xa0;
const MAX_DEPTH = 16;
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function fail(message: string): never {
  throw new DerError(message);
}

/** Checks a primitive string's bytes for its type. */
function checkString(node: Node, what: string): void {
  switch (node.tag) {
    case Tag.UTF8_STRING:
      try {
        utf8Decoder.decode(node.content);
      } catch {
        fail(`${what}: UTF8String is not UTF-8`);
      }
      return;
    case Tag.PRINTABLE_STRING:
      if (!PRINTABLE.test(node.content.toString('latin1'))) fail(`${what}: PrintableString has characters outside its set`);
      return;
    case Tag.IA5_STRING:
      if (node.content.some((b) => b > 0x7f)) fail(`${what}: IA5String is not ASCII`);
      return;
    default:
      fail(`${what}: tag 0x${node.tag.toString(16)} is not a string type accepted here`);
  }
}

/** A value of an attribute: strict DER of common types all the way down. */
function checkValue(node: Node, depth: number): void {
  if (depth > MAX_DEPTH) fail('attribute value: nested too deep');
  const constructed = (node.tag & 0x20) !== 0;
  const universal = (node.tag & 0xc0) === 0;
  if (constructed) {
    if (universal && node.tag !== Tag.SEQUENCE && node.tag !== Tag.SET) fail(`attribute value: constructed tag 0x${node.tag.toString(16)}`);
    for (const child of children(node)) checkValue(child, depth + 1);
    return;
  }
  if (!universal) return; // a primitive [n] IMPLICIT value: opaque bytes
  const { content } = node;
  switch (node.tag) {
    case Tag.BOOLEAN:
      if (content.length !== 1 || (content[0] !== 0 && content[0] !== 0xff)) fail('attribute value: BOOLEAN is not DER');
      return;
    case Tag.INTEGER:
      if (content.length === 0) fail('attribute value: empty INTEGER');
      if (
        content.length > 1 &&
        ((content[0] === 0 && !((content[1] as number) & 0x80)) || (content[0] === 0xff && (content[1] as number) & 0x80))
      )
        fail('attribute value: INTEGER is not minimal');
      return;
    case Tag.BIT_STRING:
      if (content.length === 0 || (content[0] as number) > 7 || (content.length === 1 && content[0] !== 0))
        fail('attribute value: malformed BIT STRING');
      return;
    case Tag.OCTET_STRING:
      return;
    case Tag.NULL:
      if (content.length !== 0) fail('attribute value: NULL with content');
      return;
    case Tag.OID:
      decodeOid(node);
      return;
    default:
      checkString(node, 'attribute value');
  }
}

function checkName(name: Node): void {
  for (const rdn of children(expectTag(name, Tag.SEQUENCE, 'subject'))) {
    const atvs = children(expectTag(rdn, Tag.SET, 'subject RDN'));
    if (atvs.length === 0) fail('subject: empty RDN');
    for (const atv of atvs) {
      const parts = children(expectTag(atv, Tag.SEQUENCE, 'subject attribute'));
      if (parts.length !== 2) fail('subject attribute: expected a type and a value');
      decodeOid(expectTag(parts[0], Tag.OID, 'subject attribute type'));
      checkString(parts[1] as Node, 'subject attribute value');
    }
  }
}

function checkAttributes(attributes: Node): void {
  for (const attribute of children(attributes)) {
    const parts = children(expectTag(attribute, Tag.SEQUENCE, 'attribute'));
    if (parts.length !== 2) fail('attribute: expected a type and a set of values');
    decodeOid(expectTag(parts[0], Tag.OID, 'attribute type'));
    const values = children(expectTag(parts[1], Tag.SET, 'attribute values'));
    if (values.length === 0) fail('attribute: no value');
    for (const value of values) checkValue(value, 1);
  }
}

/** Reads a DER CSR; throws DerError naming the first thing that is not as RFC 2986 and DER require. */
export function readCsr(der: Buffer): CsrParts {
  const outer = children(expectTag(readOne(der, 'CSR'), Tag.SEQUENCE, 'CSR'));
  if (outer.length !== 3) fail('CSR: expected info, algorithm and signature');
  const [infoNode, algNode, sigNode] = outer as [Node, Node, Node];
  const info = children(expectTag(infoNode, Tag.SEQUENCE, 'CertificationRequestInfo'));
  if (info.length !== 4) fail('CertificationRequestInfo: expected version, subject, key and attributes');
  const [version, subject, spki, attributes] = info as [Node, Node, Node, Node];
  if (!expectTag(version, Tag.INTEGER, 'version').content.equals(Buffer.from([0]))) fail('version: only v1 (0) is defined');
  checkName(subject);
  expectTag(spki, Tag.SEQUENCE, 'SubjectPublicKeyInfo');
  checkAttributes(expectTag(attributes, ATTRIBUTES, 'attributes'));
  const alg = children(expectTag(algNode, Tag.SEQUENCE, 'signatureAlgorithm'));
  if (alg.length > 2) fail('signatureAlgorithm: expected an OID and at most one parameter');
  const algorithm = decodeOid(expectTag(alg[0], Tag.OID, 'signature algorithm'));
  const sigBits = expectTag(sigNode, Tag.BIT_STRING, 'signature').content;
  if (sigBits[0] !== 0) fail('signature: a BIT STRING with unused bits');
  return { info: infoNode.raw, spki: spki.raw, algorithm, algorithmParameters: alg.length === 2, signature: sigBits.subarray(1) };
}
