/** The transparentProxy section of the status document: problems and the human lines. */
import t from 'tap';
import { renderStatus } from '../../../agent/status/render.js';
import { buildStatus } from '../../../agent/status/status.js';
import type { CaptureStatus } from '../../../agent/tproxy/capture-status.js';
import { statusInput } from '../../support/status-input.js';

const base: CaptureStatus = {
  state: 'installed',
  backend: 'nft',
  ipv6: true,
  failurePolicy: 'closed',
  rules: { expected: 24, installed: 24 },
  drift: { missing: [], unexpected: [] },
  inboundPorts: [8080],
  lastCheckAt: Date.UTC(2026, 10, 22, 12, 0, 0),
  repairs: 0,
};

t.test('installed capture: in the document and one line, no problem', async (t) => {
  const d = buildStatus(statusInput({ capture: base }));
  t.same(d.transparentProxy, base);
  t.same(d.problems, []);
  t.match(
    renderStatus(d),
    'capture        installed, backend nft, failurePolicy closed, rules 24/24 installed/expected, ipv6 on, inbound ports 8080, repairs 0, checked 2026-11-22 12:00:00Z',
  );
});

t.test('lifted capture is a loud problem and a WARNING line', async (t) => {
  const d = buildStatus(
    statusInput({
      capture: {
        ...base,
        state: 'lifted',
        failurePolicy: 'open',
        rules: { expected: 24, installed: 0 },
        warning: 'capture LIFTED: Envoy is not ready',
      },
    }),
  );
  t.notOk(d.healthy);
  t.match(d.problems, [/^CAPTURE LIFTED: capture LIFTED: Envoy is not ready/]);
  const text = renderStatus(d);
  t.match(text, 'capture        LIFTED, backend nft, failurePolicy open');
  t.match(text, '  WARNING: capture LIFTED: Envoy is not ready');
});

t.test('drift shows the missing and unexpected lines; a failure its code', async (t) => {
  const drift = {
    ...base,
    state: 'drift' as const,
    rules: { expected: 24, installed: 23 },
    drift: { missing: ['ipv4 nat -A MESH_INBOUND -p tcp --dport 8080 -j MESH_IN_REDIRECT'], unexpected: [] },
    repairs: 2,
  };
  const d = buildStatus(statusInput({ capture: drift }));
  t.same(d.problems, ['capture rules drifted: 1 missing, 0 unexpected (being repaired)']);
  t.match(renderStatus(d), '  missing     ipv4 nat -A MESH_INBOUND -p tcp --dport 8080 -j MESH_IN_REDIRECT');
  const failed = buildStatus(
    statusInput({
      capture: { ...base, state: 'failed', error: { code: 'MESH_E_TPROXY_IPTABLES', message: 'iptables-restore: line 3\nfailed' } },
    }),
  );
  t.same(failed.problems, ['capture failed: MESH_E_TPROXY_IPTABLES: iptables-restore: line 3 failed']);
  t.match(renderStatus(failed), '  error       MESH_E_TPROXY_IPTABLES: iptables-restore: line 3 failed');
});

t.test('no capture section when capture is not enabled', async (t) => {
  const d = buildStatus(statusInput());
  t.equal(d.transparentProxy, undefined);
  t.notMatch(renderStatus(d), 'capture ');
});
