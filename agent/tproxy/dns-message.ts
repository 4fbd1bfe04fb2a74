/**
 * The little of the DNS wire format (RFC 1035 §4.1) the split DNS proxy needs,
 * as pure functions over bytes: read a query's header and its one question
 * (to route by name), check that an answer belongs to a question, swap the
 * transaction ID, and build the error answers the proxy gives itself
 * (FORMERR, SERVFAIL, NOTIMP). Everything else in a message (EDNS, answers) is
 * forwarded byte for byte, never decoded and re-encoded.
 */

export const HEADER_BYTES = 12;
/** The longest name on the wire, length octets included (RFC 1035 §2.3.4). */
const MAX_NAME_BYTES = 255;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

const QR = 0x8000;
const RD = 0x0100;
const RA = 0x0080;
const OPCODE_MASK = 0x7800;

export interface Question {
  /** The labels of the name, as sent (case kept), root excluded: ['web', 'service', 'consul']. */
  readonly labels: readonly string[];
  readonly qtype: number;
  readonly qclass: number;
}

export type ParsedQuery =
  | { readonly ok: true; readonly id: number; readonly question: Question; readonly questionEnd: number }
  /** id is undefined when the message is too short to answer at all (it is dropped). */
  | { readonly ok: false; readonly id: number | undefined; readonly rcode: Rcode; readonly reason: string };

/** Reads the name at offset (no compression pointers: a query's first name has nothing to point to). */
function readName(message: Buffer, offset: number): { labels: string[]; end: number } | string {
  const labels: string[] = [];
  let at = offset;
  for (;;) {
    if (at >= message.length) return 'the question name runs past the end of the message';
    const length = message[at] as number;
    if (length === 0) break;
    if (length > 63) return 'the question name uses a compression pointer or a reserved label type';
    if (at + 1 + length > message.length) return 'a label of the question name runs past the end of the message';
    labels.push(message.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
    if (at - offset + 1 > MAX_NAME_BYTES) return 'the question name is longer than 255 bytes';
  }
  return { labels, end: at + 1 };
}

/** Reads a query: one question, opcode QUERY, not a response. Anything else says which error to answer. */
export function parseQuery(message: Buffer): ParsedQuery {
  if (message.length < HEADER_BYTES) {
    return { ok: false, id: undefined, rcode: RCODE.FORMERR, reason: `${message.length} bytes is shorter than a DNS header` };
  }
  const id = message.readUInt16BE(0);
  const flags = message.readUInt16BE(2);
  if ((flags & QR) !== 0) return { ok: false, id: undefined, rcode: RCODE.FORMERR, reason: 'a response, not a query' };
  if ((flags & OPCODE_MASK) !== 0) return { ok: false, id, rcode: RCODE.NOTIMP, reason: 'only opcode QUERY is served' };
  const qdcount = message.readUInt16BE(4);
  if (qdcount !== 1) return { ok: false, id, rcode: RCODE.FORMERR, reason: `${qdcount} questions (exactly 1 is served)` };
  const name = readName(message, HEADER_BYTES);
  if (typeof name === 'string') return { ok: false, id, rcode: RCODE.FORMERR, reason: name };
  if (name.end + 4 > message.length) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'the question has no type and class' };
  const question = { labels: name.labels, qtype: message.readUInt16BE(name.end), qclass: message.readUInt16BE(name.end + 2) };
  return { ok: true, id, question, questionEnd: name.end + 4 };
}

/** Whether the name is the domain or under it (case-insensitive, label by label). */
export function nameInDomain(labels: readonly string[], domain: string): boolean {
  const wanted = domain
    .replace(/\.$/, '')
    .split('.')
    .filter((label) => label !== '');
  if (wanted.length === 0 || labels.length < wanted.length) return false;
  const tail = labels.slice(labels.length - wanted.length);
  return tail.every((label, i) => label.toLowerCase() === (wanted[i] as string).toLowerCase());
}

/** A copy of the message with another transaction ID. */
export function withId(message: Buffer, id: number): Buffer {
  const copy = Buffer.from(message);
  copy.writeUInt16BE(id, 0);
  return copy;
}

export function rcodeOf(message: Buffer): number {
  return message.length < HEADER_BYTES ? -1 : message.readUInt16BE(2) & 0x000f;
}

function lowerAscii(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const b = out[i] as number;
    if (b >= 0x41 && b <= 0x5a) out[i] = b + 0x20;
  }
  return out;
}

/**
 * Whether `answer` is a response to `query` (whose question ends at
 * questionEnd): same ID, QR set, and the same question (case-insensitively,
 * as resolvers may echo 0x20-randomized case). An answer without a question is
 * accepted only as an error (servers answer FORMERR that way).
 */
export function answers(answer: Buffer, query: Buffer, questionEnd: number): boolean {
  if (answer.length < HEADER_BYTES || answer.readUInt16BE(0) !== query.readUInt16BE(0)) return false;
  if ((answer.readUInt16BE(2) & QR) === 0) return false;
  const qdcount = answer.readUInt16BE(4);
  if (qdcount === 0) return rcodeOf(answer) !== RCODE.NOERROR;
  if (qdcount !== 1 || answer.length < questionEnd) return false;
  return lowerAscii(answer.subarray(HEADER_BYTES, questionEnd)).equals(lowerAscii(query.subarray(HEADER_BYTES, questionEnd)));
}

/**
 * The proxy's own answer to a query it cannot forward: the query's ID, opcode
 * and RD, RA set, the given rcode, and the question echoed when it could be read.
 */
export function errorAnswer(query: Buffer, rcode: Rcode, questionEnd?: number): Buffer {
  const question = questionEnd === undefined ? Buffer.alloc(0) : query.subarray(HEADER_BYTES, questionEnd);
  const out = Buffer.alloc(HEADER_BYTES + question.length);
  const flags = query.readUInt16BE(2);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(QR | (flags & OPCODE_MASK) | (flags & RD) | RA | rcode, 2);
  out.writeUInt16BE(questionEnd === undefined ? 0 : 1, 4);
  question.copy(out, HEADER_BYTES);
  return out;
}
