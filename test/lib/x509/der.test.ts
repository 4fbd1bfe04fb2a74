import t from 'tap';
import {
  bits,
  children,
  ctx,
  DerError,
  decodeOid,
  expectTag,
  octets,
  oid,
  read,
  readOne,
  seq,
  smallInt,
  Tag,
  time,
  tlv,
  uint,
  utf8,
} from '../../../lib/x509/der.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

t.test('lengths: short form, over 127 (one byte) and over 255 (two bytes)', async (t) => {
  t.equal(hex(tlv(Tag.OCTET_STRING, Buffer.alloc(127))).slice(0, 4), '047f');
  const b128 = octets(Buffer.alloc(128, 1));
  t.equal(hex(b128.subarray(0, 3)), '048180');
  t.equal(b128.length, 3 + 128);
  const b200 = octets(Buffer.alloc(200, 2));
  t.equal(hex(b200.subarray(0, 3)), '0481c8');
  const b300 = octets(Buffer.alloc(300, 3));
  t.equal(hex(b300.subarray(0, 4)), '0482012c');
  t.equal(b300.length, 4 + 300);
  const b70000 = octets(Buffer.alloc(70_000));
  t.equal(hex(b70000.subarray(0, 5)), '0483011170');

  for (const [buf, size] of [
    [b128, 128],
    [b200, 200],
    [b300, 300],
    [b70000, 70_000],
  ] as const) {
    const node = read(buf);
    t.equal(node.tag, Tag.OCTET_STRING);
    t.equal(node.content.length, size);
    t.equal(node.end, buf.length);
    t.same(node.raw, buf);
  }
});

t.test('constructed values and their children', async (t) => {
  const big = utf8('x'.repeat(260));
  const whole = seq(smallInt(5), big, ctx(0, smallInt(1)), bits(Buffer.from([0xab])));
  const kids = children(read(whole));
  t.same(
    kids.map((k) => k.tag),
    [Tag.INTEGER, Tag.UTF8_STRING, 0xa0, Tag.BIT_STRING],
  );
  t.equal(kids[1]?.content.toString(), 'x'.repeat(260));
  t.equal(hex(kids[3]?.content ?? Buffer.alloc(0)), '00ab', 'bit string with no unused bits');
  t.equal(hex(ctx(2, Buffer.from([1]), false)), '820101', 'primitive context tag');
  t.same(children(read(seq())), []);
});

t.test('OIDs encode as known bytes and decode back, multi-byte arcs included', async (t) => {
  t.equal(hex(oid('2.5.4.3')), '0603550403');
  t.equal(hex(oid('1.2.840.113549.1.1.11')), '06092a864886f70d01010b');
  t.equal(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
  t.equal(hex(oid('1.3.6.1.4.1.128')), '06072b060104018100', 'arc 128 takes two bytes');
  for (const dotted of [
    '2.5.29.17',
    '1.3.101.112',
    '1.2.840.113549.1.9.14',
    '1.3.6.1.4.1.311.21.7',
    '1.3.6.1.4.1.2097151.16383.127.128',
    '1.3.6.1.4.1.4294967296',
    '0.9.2342.19200300.100.1.25',
  ]) {
    t.equal(decodeOid(read(oid(dotted))), dotted, dotted);
  }
});

t.test('OIDs under joint-iso-itu-t (2) with a second arc of 40 or more', async (t) => {
  // X.690 8.19.4: the first two arcs make one subidentifier, 40 * 2 + arc, itself base 128.
  t.equal(hex(oid('2.999.3')), '0603883703');
  t.equal(hex(oid('2.40.1')), '06027801');
  for (const dotted of ['2.40.1', '2.47.0', '2.48.5', '2.999.3', '2.100000.7', '2.25.1234', '1.39.1', '0.0']) {
    t.equal(decodeOid(read(oid(dotted))), dotted, dotted);
  }
});

t.test('uint: sign byte for a high bit, leading zeros trimmed', async (t) => {
  t.equal(hex(uint(Buffer.from([0x80]))), '02020080');
  t.equal(hex(uint(Buffer.from([0xff, 0x01]))), '020300ff01');
  t.equal(hex(uint(Buffer.from([0x00, 0x00, 0x01]))), '020101');
  t.equal(hex(uint(Buffer.from([0x00, 0x00, 0x80, 0x00]))), '0203008000', 'trimmed, then the sign byte');
  t.equal(hex(uint(Buffer.from([0x00, 0x00]))), '020100', 'zero is one zero byte');
  t.equal(hex(uint(Buffer.alloc(0))), '020100', 'empty is zero');
  t.equal(hex(uint(Buffer.from([0x7f]))), '02017f');
  t.equal(hex(smallInt(0)), '020100');
  t.equal(hex(smallInt(2)), '020102');
  const serial = Buffer.alloc(20, 0xff);
  const node = read(uint(serial));
  t.equal(node.content.length, 21);
  t.equal(node.content[0], 0);
});

t.test('time: UTCTime before 2050, GeneralizedTime from 2050; whole seconds', async (t) => {
  const utc = read(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999))));
  t.equal(utc.tag, Tag.UTC_TIME);
  t.equal(utc.content.toString(), '491231235959Z');
  const y2k = read(time(new Date(Date.UTC(2000, 0, 2, 3, 4, 5))));
  t.equal(y2k.content.toString(), '000102030405Z');
  const gen = read(time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0))));
  t.equal(gen.tag, Tag.GENERALIZED_TIME);
  t.equal(gen.content.toString(), '20500101000000Z');
  t.equal(read(time(new Date(Date.UTC(2126, 5, 7, 8, 9, 10)))).content.toString(), '21260607080910Z');
});

t.test('read() refuses truncated and malformed input', async (t) => {
  const cases: Array<[string, number[], RegExp]> = [
    ['empty', [], /truncated DER/],
    ['tag only', [0x30], /truncated DER/],
    ['content short', [0x04, 0x05, 1, 2], /truncated DER/],
    ['long length bytes missing', [0x04, 0x82, 0x01], /bad DER length/],
    ['long length content short', [0x04, 0x81, 0x80, ...Buffer.alloc(127)], /truncated DER/],
    ['indefinite length', [0x30, 0x80, 0, 0], /bad DER length: indefinite length/],
    ['length of 5 bytes', [0x04, 0x85, 0, 0, 0, 0, 1, 0], /bad DER length/],
    ['long form for a short length', [0x04, 0x81, 0x01, 0xaa], /long form for a length under 128/],
    ['long form for a zero length', [0x04, 0x81, 0x00], /bad DER length: leading zero length byte/],
    ['leading zero length byte', [0x04, 0x82, 0x00, 0x80, ...Buffer.alloc(128)], /leading zero length byte/],
    ['high tag number (tag-31 form)', [0x1f, 0x81, 0x00, 0x00], /high tag numbers are not accepted/],
    ['high tag number, context class', [0xbf, 0x20, 0x00], /high tag numbers are not accepted/],
    ['length byte 0xff', [0x04, 0xff, 1], /bad DER length/],
  ];
  for (const [what, bytes, message] of cases) {
    t.throws(() => read(Buffer.from(bytes)), { constructor: DerError, message }, what);
  }
  t.throws(() => read(Buffer.from([0x04, 0x01, 0x00]), 2), { constructor: DerError, message: /truncated DER/ }, 'offset at the end');
  // A child running past its parent.
  const broken = Buffer.from([0x30, 0x03, 0x04, 0x05, 0x00]);
  t.throws(() => children(read(broken)), { message: /truncated DER/ });
  t.throws(() => expectTag(read(smallInt(1)), Tag.SEQUENCE, 'thing'), { constructor: DerError, message: 'thing: expected tag 0x30' });
  t.throws(() => expectTag(undefined, Tag.SEQUENCE, 'missing'), { constructor: DerError, message: 'missing: expected tag 0x30' });
  t.equal(read(Buffer.from([0x05, 0x00, 0xff])).end, 2, 'trailing bytes are left to the caller of read()');
  t.throws(() => readOne(Buffer.from([0x05, 0x00, 0xff]), 'thing'), { constructor: DerError, message: 'trailing bytes after the thing' });
  t.same(readOne(Buffer.from([0x05, 0x00]), 'thing').raw, Buffer.from([0x05, 0x00]));
  // A child that stops short of its parent's end leaves bytes that are no TLV.
  t.throws(() => children(read(Buffer.from([0x30, 0x03, 0x05, 0x00, 0x00]))), { constructor: DerError, message: /truncated DER/ });
});

t.test('the minimal long forms are accepted: 128 in one byte, 256 in two', async (t) => {
  t.equal(read(Buffer.from([0x04, 0x81, 0x80, ...Buffer.alloc(128)])).content.length, 128);
  t.equal(read(Buffer.from([0x04, 0x82, 0x01, 0x00, ...Buffer.alloc(256)])).content.length, 256);
  t.equal(read(Buffer.from([0x9e, 0x00])).tag, 0x9e, 'tag number 30 is still the low form');
});

t.test('decodeOid refuses empty, truncated and non-minimal OIDs', async (t) => {
  const cases: Array<[string, number[], RegExp]> = [
    ['empty', [0x06, 0x00], /bad OID: empty/],
    ['last byte has the continuation bit', [0x06, 0x03, 0x2a, 0x86, 0xc8], /truncated subidentifier/],
    ['one byte with the continuation bit', [0x06, 0x01, 0x81], /truncated subidentifier/],
    ['0x80 leading a later subidentifier', [0x06, 0x03, 0x2a, 0x80, 0x01], /not minimally encoded/],
    ['0x80 leading the first subidentifier', [0x06, 0x02, 0x80, 0x2a], /not minimally encoded/],
    ['an arc past 2^53', [0x06, 0x0a, 0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], /arc too large/],
  ];
  for (const [what, bytes, message] of cases) {
    t.throws(() => decodeOid(read(Buffer.from(bytes))), { constructor: DerError, message }, what);
  }
  t.equal(decodeOid(read(Buffer.from([0x06, 0x02, 0x81, 0x00]))), '2.48', '0x81 0x00 is minimal (128)');
  t.equal(decodeOid(read(Buffer.from([0x06, 0x03, 0x2a, 0x00, 0x00]))), '1.2.0.0', 'zero arcs are one 0x00 byte each');
});
