import t from 'tap';
import { createInterner } from '../../lib/intern.js';

t.test('equal strings come back as one copy', async (t) => {
  const intern = createInterner();
  const a = intern(['spiffe://example.org/ns/default/sa/', 'api'].join(''));
  const b = intern(['spiffe://example.org/ns/default/sa/', 'api'].join(''));
  t.equal(a, b);
  t.equal(intern.size, 1);
  t.equal(intern('other'), 'other');
  t.equal(intern.size, 2);
});

t.test('the table starts over past its bound, and values stay right', async (t) => {
  const intern = createInterner(3);
  for (const v of ['a', 'b', 'c']) intern(v);
  t.equal(intern.size, 3);
  t.equal(intern('d'), 'd', 'a new value past the bound');
  t.equal(intern.size, 1, 'the table started over');
  t.equal(intern('a'), 'a');
});
