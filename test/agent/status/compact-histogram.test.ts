import { Histogram, Registry } from 'prom-client';
import t from 'tap';
import { CompactHistogram } from '../../../agent/status/compact-histogram.js';

const BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600];
const options = { name: 'x_duration_seconds', help: 'Help with "quotes" and a \\ backslash.', buckets: BUCKETS };

/** The same observations into prom-client's Histogram and the compact one, each in its own registry. */
function both() {
  const promRegistry = new Registry();
  const compactRegistry = new Registry();
  const prom = new Histogram({ ...options, labelNames: ['service', 'outcome'], registers: [promRegistry] });
  const compact = new CompactHistogram({ ...options, labelNames: ['service', 'outcome'] as const, registers: [compactRegistry] });
  const observe = (labels: { service: string; outcome: string }, value: number) => {
    prom.observe(labels, value);
    compact.observe(labels, value);
  };
  return { promRegistry, compactRegistry, prom, compact, observe };
}

t.test('the exposition text and the JSON are exactly prom-client Histogram ones for the same observations', async (t) => {
  const { promRegistry, compactRegistry, observe } = both();
  // A fixed pseudo-random sequence: services, outcomes, values on and between the bounds, above the last.
  let seed = 7;
  const next = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const outcomes = ['changed', 'unchanged', 'error'];
  for (let i = 0; i < 2_000; i++) {
    const service = `svc-${Math.floor(next() * 40)}${i % 97 === 0 ? '"quoted\\' : ''}`;
    const outcome = outcomes[Math.floor(next() * 3)] as string;
    const r = next();
    const value = r < 0.2 ? (BUCKETS[Math.floor(next() * BUCKETS.length)] as number) : r < 0.25 ? 700 + next() : next() * 120;
    observe({ service, outcome }, value);
  }
  // Labels given in another key order name the same series, in the label names' order.
  observe({ outcome: 'changed', service: 'svc-1' } as never, 0.3);
  t.equal(await compactRegistry.metrics(), await promRegistry.metrics());
  t.same(await compactRegistry.getMetricsAsJSON(), await promRegistry.getMetricsAsJSON());
});

t.test('no observation: the help and type lines only, as prom-client; reset forgets every series', async (t) => {
  const { promRegistry, compactRegistry, prom, compact, observe } = both();
  t.equal(await compactRegistry.metrics(), await promRegistry.metrics());
  observe({ service: 'a', outcome: 'changed' }, 1);
  prom.reset();
  compact.reset();
  t.equal(await compactRegistry.metrics(), await promRegistry.metrics());
});

t.test('a value that is not a finite number is refused, as prom-client does', async (t) => {
  const { compact } = both();
  t.throws(() => compact.observe({ service: 'a', outcome: 'changed' }, Number.NaN), TypeError);
  t.throws(() => compact.observe({ service: 'a', outcome: 'changed' }, Number.POSITIVE_INFINITY), TypeError);
});
