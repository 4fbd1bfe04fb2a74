import t from 'tap';
import { answers, errorAnswer, nameInDomain, parseQuery, RCODE, withId } from '../../../agent/tproxy/dns-message.js';
import { formatServer, parseResolvConf } from '../../../agent/tproxy/resolv-conf.js';
import { buildAnswer, buildQuery, decodeAnswer } from '../../support/dns-wire.js';

t.test('a query is read: id, labels, type; the question ends after type and class', async (t) => {
  const query = buildQuery('Web.Service.consul', 4711, 28);
  const parsed = parseQuery(query);
  if (!parsed.ok) throw new Error(parsed.reason);
  t.equal(parsed.id, 4711);
  t.same(parsed.question, { labels: ['Web', 'Service', 'consul'], qtype: 28, qclass: 1 });
  t.equal(parsed.questionEnd, query.length);
});

t.test('broken queries say which error to answer, or that there is none', async (t) => {
  const tooShort = parseQuery(Buffer.from([1, 2, 3]));
  t.match(tooShort, { ok: false, id: undefined }, 'shorter than a header: dropped');
  const response = parseQuery(buildAnswer(buildQuery('a.b', 9), { rcode: 0 }));
  t.match(response, { ok: false, id: undefined }, 'a response sent to us: dropped');
  const noQuestion = buildQuery('a.b', 10);
  noQuestion.writeUInt16BE(0, 4);
  t.match(parseQuery(noQuestion), { ok: false, id: 10, rcode: RCODE.FORMERR });
  const pointer = Buffer.concat([buildQuery('x', 11).subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
  t.match(parseQuery(pointer), { ok: false, id: 11, rcode: RCODE.FORMERR, reason: /compression pointer/ });
  const cut = buildQuery('web.service.consul', 12).subarray(0, 20);
  t.match(parseQuery(cut), { ok: false, id: 12, rcode: RCODE.FORMERR, reason: /past the end/ });
  const noType = buildQuery('web', 13).subarray(0, 12 + 5);
  t.match(parseQuery(noType), { ok: false, id: 13, rcode: RCODE.FORMERR, reason: /no type and class/ });
  const update = buildQuery('web', 14);
  update.writeUInt16BE(5 << 11, 2);
  t.match(parseQuery(update), { ok: false, id: 14, rcode: RCODE.NOTIMP });
  const long = Buffer.concat([
    buildQuery('x', 15).subarray(0, 12),
    ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
  t.match(parseQuery(long), { ok: false, id: 15, rcode: RCODE.FORMERR, reason: /255 bytes/ });
});

t.test('the domain matches itself and names under it, label by label, in any case', async (t) => {
  t.ok(nameInDomain(['web', 'service', 'consul'], 'consul'));
  t.ok(nameInDomain(['WEB', 'Service', 'CONSUL'], 'consul.'));
  t.ok(nameInDomain(['consul'], 'consul'));
  t.ok(nameInDomain(['a', 'mesh', 'example'], 'mesh.example'));
  t.notOk(nameInDomain(['notconsul'], 'consul'));
  t.notOk(nameInDomain(['web', 'consul', 'example', 'com'], 'consul'));
  t.notOk(nameInDomain(['web.consul'], 'consul'), 'a dot inside a label is not a label boundary');
  t.notOk(nameInDomain([], 'consul'));
});

t.test('an answer belongs to the query with the same id and question, in any case', async (t) => {
  const query = buildQuery('web.service.consul', 100);
  const end = query.length;
  t.ok(answers(buildAnswer(query, { address: '10.0.0.1' }), query, end));
  t.ok(answers(buildAnswer(buildQuery('WEB.service.Consul', 100), { address: '10.0.0.1' }), query, end));
  t.notOk(answers(buildAnswer(buildQuery('api.service.consul', 100), { address: '10.0.0.1' }), query, end), 'other question');
  t.notOk(answers(buildAnswer(buildQuery('web.service.consul', 101), { address: '10.0.0.1' }), query, end), 'other id');
  t.notOk(answers(query, query, end), 'not a response');
  const bare = errorAnswer(query, RCODE.FORMERR);
  t.ok(answers(bare, query, end), 'an error without the question');
  const bareOk = Buffer.from(bare);
  bareOk.writeUInt16BE(0x8080, 2);
  t.notOk(answers(bareOk, query, end), 'NOERROR without the question');
});

t.test('error answers keep id and RD, set QR and RA, echo the question when read', async (t) => {
  const query = buildQuery('example.org', 0xbeef);
  const servfail = decodeAnswer(errorAnswer(query, RCODE.SERVFAIL, query.length));
  t.same(servfail, { id: 0xbeef, rcode: RCODE.SERVFAIL, name: 'example.org', addresses: [] });
  const formerr = errorAnswer(query, RCODE.FORMERR);
  t.equal(formerr.length, 12);
  t.equal(formerr.readUInt16BE(2), 0x8000 | 0x0100 | 0x0080 | RCODE.FORMERR);
  t.equal(withId(query, 7).readUInt16BE(0), 7);
  t.equal(query.readUInt16BE(0), 0xbeef, 'withId copies');
});

t.test('resolv.conf: nameserver lines in order, at most three, comments ignored; none means 127.0.0.1', async (t) => {
  const text = [
    '# generated',
    'search example.internal',
    'nameserver 127.0.0.53',
    'nameserver   10.0.0.2 # office',
    ';nameserver 10.9.9.9',
    'nameserver not-an-address',
    'nameserver fe80::1%eth0',
    'nameserver 10.0.0.3',
    'options edns0 trust-ad',
  ].join('\n');
  const servers = parseResolvConf(text);
  t.same(
    servers.map(formatServer),
    ['127.0.0.53:53', '10.0.0.2:53', '[fe80::1%eth0]:53'],
    'the fourth valid nameserver is ignored, as glibc does',
  );
  t.same(parseResolvConf('search x\n').map(formatServer), ['127.0.0.1:53']);
});
