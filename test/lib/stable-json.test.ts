import t from 'tap';
import { contentHash, entriesHash, stableJson } from '../../lib/stable-json.js';

t.test('stableJson: keys sorted, undefined members left out', async (t) => {
  t.equal(stableJson({ b: 1, a: [2, undefined], c: undefined }), '{"a":[2,null],"b":1}');
  t.equal(contentHash({ a: 1, b: 2 }), contentHash({ b: 2, a: 1 }));
});

t.test('entriesHash: equal sequences hash alike; order, grouping and quoting matter', async (t) => {
  const a: Array<[string, string, string]> = [
    ['clusters', 'x', 'v1'],
    ['endpoints', 'x', 'v2'],
  ];
  t.match(entriesHash(a), /^[0-9a-f]{64}$/);
  t.equal(entriesHash(a), entriesHash(a.map((e) => [...e] as [string, string, string])));
  t.not(entriesHash(a), entriesHash([...a].reverse()), 'order');
  t.not(entriesHash([['clusters', 'x', 'v1']]), entriesHash([['endpoints', 'x', 'v1']]), 'group');
  t.not(entriesHash([['k', 'a\u0000b', 'v']]), entriesHash([['k', 'a', '"b\u0000v']]), 'a name cannot pass for another entry');
  t.not(entriesHash([]), entriesHash([['', '', '']]));
});
