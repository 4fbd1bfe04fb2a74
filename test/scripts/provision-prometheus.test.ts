import t from 'tap';
import { PROMETHEUS_DEB_VERSION, parsePrometheusVersion, provisionPrometheus } from '../../scripts/provision-prometheus.js';
import { prometheusTools } from '../support/tools.js';

t.test("the version parser reads prometheus's and promtool's --version (the Debian revision)", async (t) => {
  const out = (tool: string) =>
    `${tool}, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)\n  build user:       team+pkg-go@tracker.debian.org\n`;
  t.equal(parsePrometheusVersion(out('prometheus')), '2.42.0+ds-5+deb12u1');
  t.equal(parsePrometheusVersion(out('promtool')), '2.42.0+ds-5+deb12u1');
  t.equal(parsePrometheusVersion('prometheus, version 2.42.0'), undefined);
});

t.test('a provisioned cache is reused: both binaries answer with the pin, and a second run changes nothing', async (t) => {
  const first = await prometheusTools();
  t.equal(first.prometheus.version, PROMETHEUS_DEB_VERSION);
  t.equal(first.promtool.version, PROMETHEUS_DEB_VERSION);
  const lines: string[] = [];
  const again = await provisionPrometheus({
    cacheDir: first.prometheus.path.replace(/\/prometheus-[^/]+\/usr\/bin\/prometheus$/, ''),
    progress: (l) => lines.push(l),
  });
  t.same(again, first, 'the same paths and versions');
  t.same(lines, [], 'nothing downloaded');
});
