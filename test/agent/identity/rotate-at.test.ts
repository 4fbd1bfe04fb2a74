import t from 'tap';
import { ROTATE_MARGIN_MS, rotateAt, rotateMargin } from '../../../agent/identity/rotate-at.js';

const HOUR = 3_600_000;
const cert = { notBefore: Date.UTC(2026, 10, 22, 12), notAfter: Date.UTC(2026, 10, 22, 13) };

t.test('defaults: 50% of the lifetime, +/- 10% by the random source', async (t) => {
  t.equal(
    rotateAt(cert, 0.5, 0.1, () => 0.5),
    cert.notBefore + HOUR / 2,
    'random 0.5 is the middle',
  );
  t.equal(
    rotateAt(cert, 0.5, 0.1, () => 0),
    cert.notBefore + 0.4 * HOUR,
    'random 0 is 40%',
  );
  t.equal(
    rotateAt(cert, 0.5, 0.1, () => 1),
    cert.notBefore + 0.6 * HOUR,
    'random 1 is 60%',
  );
  t.equal(
    rotateAt(cert, 0.5, 0, () => 0.9),
    cert.notBefore + HOUR / 2,
    'no jitter ignores the random source',
  );
  t.equal(
    rotateAt(cert, undefined, undefined, () => 0.25),
    cert.notBefore + 0.45 * HOUR,
    'defaults are 0.5 and 0.1',
  );
});

t.test('deterministic for one random source, spread uniformly over the window', async (t) => {
  let seed = 42;
  const lcg = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const draws = Array.from({ length: 2000 }, () => rotateAt(cert, 0.5, 0.1, lcg));
  seed = 42;
  t.same(
    Array.from({ length: 2000 }, () => rotateAt(cert, 0.5, 0.1, lcg)),
    draws,
    'same seed, same answers',
  );
  const fractions = draws.map((at) => (at - cert.notBefore) / HOUR);
  t.ok(
    fractions.every((f) => f >= 0.4 && f <= 0.6),
    'all within 40%..60%',
  );
  const low = fractions.filter((f) => f < 0.5).length;
  t.ok(low > 800 && low < 1200, `about half below 50% (${low} of 2000)`);
  t.ok(Math.min(...fractions) < 0.41 && Math.max(...fractions) > 0.59, 'reaches both ends of the window');
  t.ok(
    draws.every((at) => Number.isInteger(at)),
    'whole milliseconds',
  );
});

t.test('clamped into [notBefore, notAfter - margin]', async (t) => {
  t.equal(
    rotateAt(cert, 0.95, 0.1, () => 1),
    cert.notAfter - ROTATE_MARGIN_MS,
    'never later than one minute before expiry',
  );
  t.equal(
    rotateAt(cert, 0.05, 0.1, () => 0),
    cert.notBefore,
    'never before notBefore',
  );
  const short = { notBefore: 0, notAfter: 10_000 };
  t.equal(rotateMargin(10_000), 1_000, 'a short lifetime keeps a tenth as margin');
  t.equal(
    rotateAt(short, 0.99, 0, () => 0.5),
    9_000,
  );
  t.equal(rotateMargin(24 * HOUR), ROTATE_MARGIN_MS);
  for (const r of [0, 0.3, 0.7, 1]) {
    for (const ratio of [0.01, 0.5, 0.99]) {
      const at = rotateAt(short, ratio, 0.5, () => r);
      t.ok(at >= short.notBefore && at <= short.notAfter - 1_000, `ratio ${ratio}, random ${r}: ${at} in bounds`);
    }
  }
  t.equal(
    rotateAt(cert, 0.5, 0.1, () => 7),
    cert.notBefore + 0.6 * HOUR,
    'a random source out of [0, 1] is clamped',
  );
});

t.test('no lifetime renews at once; bad input is refused', async (t) => {
  t.equal(rotateAt({ notBefore: 5000, notAfter: 5000 }), 5000);
  t.equal(rotateAt({ notBefore: 5000, notAfter: 1000 }), 5000);
  t.throws(() => rotateAt(cert, 1.2), { code: 'MESH_E_CONFIG_INVALID' });
  t.throws(() => rotateAt(cert, 0), { code: 'MESH_E_CONFIG_INVALID' });
  t.throws(() => rotateAt(cert, 0.5, -0.1), { code: 'MESH_E_CONFIG_INVALID' });
  t.throws(() => rotateAt({ notBefore: Number.NaN, notAfter: 1 }), { code: 'MESH_E_CERT_INVALID' });
});
