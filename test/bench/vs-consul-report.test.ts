import t from 'tap';
import {
  ratio,
  replaceSection,
  reportSection,
  SECTION_END,
  SECTION_START,
  type SideFigures,
  targets,
  type VsConsulFigures,
} from '../../bench/lib/vs-consul-report.js';

// Applied is the poll's figure minus 3 ms (Envoy applies before a poll shows it).
const side = (delays: number[], rss: number): SideFigures => ({
  applied: delays.map((d) => d - 3),
  delays,
  polls: [1, 2, 3],
  bytesPerChange: 2048,
  bytesUntilReady: 300 * 1024,
  readyMs: 1500,
  setupToReadyMs: 3000,
  initFetchTimeouts: 0,
  agentRssMb: rss + 3,
  agentRssSamples: [rss + 2, rss - 1, rss, rss + 1, rss - 2],
  envoyRssMb: 100,
  rejected: 0,
  rejectedStats: 404,
});

const figures = (ours: number[], consul: number[], oursRss = 60, consulRss = 80): VsConsulFigures => ({
  flips: ours.length,
  pollMs: 2,
  upstreams: 200,
  instances: 10,
  services: 1000,
  ours: side(ours, oursRss),
  consul: side(consul, consulRss),
  consulServerRssMb: 300,
  rawBlockingQuery: [5, 7, 9],
  load: ['1.0', '2.0', '3.0'],
});

t.test('ratio', async (t) => {
  t.equal(ratio(1, 4), '0.25x');
  t.equal(ratio(50, 2), '25.0x');
  t.equal(ratio(1, 0), '-');
  t.equal(ratio(Number.NaN, 1), '-');
});

t.test('targets: ratio, absolute propagation and memory', async (t) => {
  const met = targets(figures([10, 20, 30, 40], [200, 210, 220, 230]));
  t.same(
    met.map((r) => r.met),
    [true, true, true, true, true, true, true, true],
  );
  t.same(
    met.slice(0, 6).map((r) => r.target.replace(/ \(.*\)$/, '')),
    [
      "propagation p99: ours <= 0.25 x Consul's",
      'propagation p50 <= 25 ms',
      'propagation p99 <= 50 ms',
      "propagation p99: ours <= 0.25 x Consul's",
      'propagation p50 <= 25 ms',
      'propagation p99 <= 50 ms',
    ],
  );
  t.match(met[0]?.target, /applied: Envoy's update_time/);
  t.match(met[3]?.target, /shown: a config_dump poll/);
  const missed = targets(figures([60, 70, 80, 90], [200, 210, 220, 230], 90, 80));
  t.same(
    missed.map((r) => r.met),
    [false, false, false, false, false, false, false, false],
  );
  t.equal(missed[0]?.value, '87.0 ms vs 56.8 ms (0.25 x 227)', 'ours, the bar, and the Consul p99 it is a quarter of');
  t.match(missed[3]?.value, '90.0 ms vs 57.5 ms');
  // Between the two: met when applied, not when shown by a poll.
  const between = targets(figures([27, 27, 27, 27], [200, 210, 220, 230]));
  t.same(
    between.slice(0, 6).map((r) => r.met),
    [true, true, true, true, false, true],
  );
  t.equal(met.length, 8, 'no issuance row unless measured');
  t.same(met[6]?.value, '60.0 MB vs 80.0 MB', 'memory: the median of the readings, not the last one (63 vs 83)');
  const medianUnder = targets(figures([10], [200], 69, 80));
  t.same(
    medianUnder.slice(6, 8).map((r) => [r.value, r.met]),
    [
      ['69.0 MB vs 80.0 MB', true],
      ['69.0 MB', true],
    ],
    'met on the median (69 MB) though the one reading after the flips was 72 MB',
  );
  const withIssuance = targets(figures([10], [200]), { ratio: 1.5, met: true });
  t.same(withIssuance[8], { target: "issuances/s: ours >= Consul's with its limit off", value: '1.50x', met: true });
});

t.test('reportSection holds every table, both systems and the ratio', async (t) => {
  const text = reportSection(figures([10, 20], [200, 400]), {
    command: 'npm run bench -- vs-consul',
    date: '2026-11-30 09:00 UTC',
    issuance: [],
    issuanceNote: 'not measured in this run (`--skip-issuance`)',
  });
  t.match(text, /npm run bench -- vs-consul`, 2026-11-30 09:00 UTC, load average \(1 min\) 1.0 \/ 2.0 \/ 3.0/);
  t.match(text, /\| Consul write -> Envoy applied it \(its update_time for the cluster\), p50 \(2 flips\) \| 7.0 \| 197 \| 0.04x \|/);
  t.match(text, /\| Consul write -> a config_dump poll shows it, p50 \(a poll every 2 ms after the last\) \| 10.0 \| 200 \| 0.05x \|/);
  t.match(text, /\| p99 \| 20.0 \| 400 \| 0.05x \|/);
  t.match(text, /raw blocking query returns, p50 \/ p99 \| 7.0 \/ 9.0 \| same \| - \|/);
  t.match(text, /config_dump poll of that Envoy, p50 \(a poll every 2 ms after the last\) \| 2.0 \| 2.0 \| 1.00x \|/);
  t.match(text, /\| received by Envoy per flip \(xDS cluster rx bytes\) \| 2.0 \| 2.0 \| 1.00x \|/);
  t.match(text, /\| received from connect until ready \(read before the flips\) \| 300 \| 300 \| 1.00x \|/);
  t.match(text, /Envoy start -> 200 upstream clusters with 10 healthy endpoints \| 1500 \| 1500 \| 1.00x \|/);
  t.match(text, /initial_fetch_timeout \(15 s\) on the way \| 0 \| 0 \| - \|/);
  t.match(text, /sidecar registered\) \| 3000 \| 3000 \| 1.00x \|/);
  t.match(text, /client agent\), median of 5 readings every 0.5 s over the flips and 5 s after \| 60.0 \| 80.0 \| 0.75x \|/);
  t.match(text, /\| \(info\) the same, one reading after the flips \| 63.0 \| 83.0 \| 0.76x \|/);
  t.match(text, /update_rejected after the run \| 0 \(of 404 stats\) \| 0 \(of 404 stats\) \| 0 for both \|/);
  t.match(text, /not measured in this run \(`--skip-issuance`\)/);
  const withIssuance = reportSection(figures([1], [2]), { command: 'c', date: 'd', issuance: ['| x |\n| --- |\n| 1 |'], issuanceNote: '' });
  t.match(withIssuance, /\*\*Certificates\*\*\n\n\| x \|/);
  const verdict = reportSection(figures([1], [2]), {
    command: 'c',
    date: 'd',
    issuance: ['t'],
    issuanceNote: '',
    verdict: { ratio: 0.5, met: false },
  });
  t.match(verdict, /\| issuances\/s: ours >= Consul's with its limit off \| 0.50x \| NOT met \|/);
});

t.test('replaceSection replaces only what is between the markers', async (t) => {
  const readme = `# Benchmarks\n\n## vs-consul\n\ntext\n\n${SECTION_START}\nold\n${SECTION_END}\n\n## xds\n`;
  const out = replaceSection(readme, '\nnew figures\n');
  t.equal(out, `# Benchmarks\n\n## vs-consul\n\ntext\n\n${SECTION_START}\nnew figures\n${SECTION_END}\n\n## xds\n`);
  t.equal(replaceSection(out, 'new figures'), out, 'the same body twice changes nothing');
  t.throws(() => replaceSection('# no markers', 'x'), /no .* markers/);
  t.throws(() => replaceSection(`${SECTION_END}\n${SECTION_START}`, 'x'), /markers/);
});
