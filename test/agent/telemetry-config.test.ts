/**
 * Access log and tracing settings from the files to the model: agent config
 * `accessLog` and `tracing` (defaults, errors naming the field), the workload
 * file's `accessLog` switch over the agent default, and the agent's pick-up
 * of access log lines from Envoy's stdout.
 */
import t from 'tap';
import { agentConfigSchema } from '../../agent/config/schema.js';
import { makeView } from '../../agent/discovery/catalog-view.js';
import { parseAccessLogLine } from '../../agent/envoy/access-log-line.js';
import { accessLogFile, inboundAccessLogPath, modelTracing } from '../../agent/envoy/agent-envoy.js';
import { buildModel } from '../../agent/model/build-model.js';
import { parseWorkload } from '../../agent/workloads/load.js';
import type { Workload } from '../../agent/workloads/workload.js';
import { validateConfig } from '../../lib/config-file.js';
import { isMeshError } from '../../lib/errors.js';

const parse = (input: unknown) => validateConfig(agentConfigSchema(), input, 'agent.yaml');

t.test('defaults: access log off, to <dataDir>/envoy/access.log; no tracing', async (t) => {
  const config = parse({ dataDir: '/var/lib/x' });
  t.same(config.accessLog, { enabled: false, output: 'file' });
  t.equal(config.tracing, undefined);
  t.equal(accessLogFile(config), '/var/lib/x/envoy/access.log');
  t.equal(inboundAccessLogPath('/var/lib/x'), '/var/lib/x/envoy/access.log');
  t.equal(accessLogFile(parse({ accessLog: { path: '/var/log/mesh/access.log' } })), '/var/log/mesh/access.log');
  t.equal(accessLogFile(parse({ accessLog: { enabled: true, output: 'stdout' } })), undefined, 'stdout: no file');
  t.equal(modelTracing(undefined), undefined);
});

t.test('tracing: provider, address split into host and port, samplingPercent defaulting to 100', async (t) => {
  const config = parse({ tracing: { provider: 'zipkin', address: 'zipkin.internal:9411' } });
  t.same(modelTracing(config.tracing), { provider: 'zipkin', host: 'zipkin.internal', port: 9411, samplingPercent: 100 });
  const otel = parse({ tracing: { provider: 'opentelemetry', address: '127.0.0.1:4317', samplingPercent: 2.5 } });
  t.same(modelTracing(otel.tracing), { provider: 'opentelemetry', host: '127.0.0.1', port: 4317, samplingPercent: 2.5 });
});

t.test('bad values name the field', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ tracing: { provider: 'jaeger', address: 'a:1' } }, 'tracing.provider'],
    [{ tracing: { provider: 'zipkin' } }, 'tracing.address'],
    [{ tracing: { provider: 'zipkin', address: 'nohost' } }, 'tracing.address'],
    [{ tracing: { provider: 'zipkin', address: 'a:1', samplingPercent: 101 } }, 'tracing.samplingPercent'],
    [{ accessLog: { output: 'journal' } }, 'accessLog.output'],
    [{ accessLog: { enabled: 'yes' } }, 'accessLog.enabled'],
    [{ accessLog: { format: 'text' } }, 'accessLog.format'],
  ];
  for (const [input, field] of cases) {
    const err = (() => {
      try {
        parse(input);
        return undefined;
      } catch (e) {
        return e as { details: { issues: Array<{ path: string }> } };
      }
    })();
    t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'), `${JSON.stringify(input)} is refused`);
    t.same(
      err?.details.issues.map((i) => i.path),
      [field],
      `names ${field}`,
    );
  }
});

const ctx = { trustDomain: 'example.org', inboundPortOffset: 10000 };

function workloadFrom(text: string): Workload {
  const parsed = parseWorkload('w.yaml', text, ctx);
  if (Array.isArray(parsed)) throw new Error(JSON.stringify(parsed));
  return parsed;
}

t.test('the workload file switch wins over the agent default', async (t) => {
  const on = workloadFrom('name: a\nport: 8001\nprotocol: http\naccessLog: true\n');
  const off = workloadFrom('name: b\nport: 8002\nprotocol: http\naccessLog: false\n');
  const unset = workloadFrom('name: c\nport: 8003\nprotocol: http\n');
  t.equal(on.accessLog, true);
  t.equal(off.accessLog, false);
  t.notOk('accessLog' in unset, 'unset: no key');
  const bad = parseWorkload('w.yaml', 'name: d\nport: 8004\naccessLog: maybe\n', ctx);
  t.match(bad, [{ file: 'w.yaml', field: 'accessLog' }]);

  const logged = (accessLogDefault: boolean) =>
    buildModel({
      nodeName: 'n',
      trustDomain: 'example.org',
      workloads: [on, off, unset],
      view: makeView(1, []),
      svids: new Set([on.spiffeId, off.spiffeId, unset.spiffeId]),
      accessLogDefault,
    })
      .model.workloads.filter((w) => w.accessLog === true)
      .map((w) => w.name);
  t.same(logged(false), ['a'], 'agent default off: only the workload that asks');
  t.same(logged(true), ['a', 'c'], 'agent default on: all but the workload that opts out');
});

t.test('access log lines on Envoy stdout are told from its other output', async (t) => {
  const line = '{"kind":"access","path":"/x","status":200}';
  t.same(parseAccessLogLine(line), { kind: 'access', path: '/x', status: 200 });
  t.equal(parseAccessLogLine('[2026-11-30][info][main] starting main dispatch loop'), undefined);
  t.equal(parseAccessLogLine('{"kind":"other"}'), undefined);
  t.equal(parseAccessLogLine('{"kind":"access", broken'), undefined);
  t.equal(parseAccessLogLine('{"note":"\\"kind\\":\\"access\\"","kind":"x"}'), undefined, 'the marker must be the kind');
});
