import t from 'tap';
import { type ServingInput, workloadServing } from '../../../agent/dataplane/workload-serving.js';
import { NOTHING_ACKED } from '../../../agent/xds/cache/acked-resources.js';

const WEB = 'spiffe://example.org/ns/default/sa/web';
const web = { name: 'web', spiffeId: WEB, meshPort: 18080 };

const acked = (listeners: string[], secrets: string[]) => ({
  ...NOTHING_ACKED,
  listeners: new Map(listeners.map((n) => [n, 'v1'])),
  secrets: new Map(secrets.map((n) => [n, 'v1'])),
});

const base: ServingInput = {
  workloads: [web],
  problems: [],
  envoy: { state: 'running' },
  servedListeners: new Set(['inbound:web']),
  acked: acked(['inbound:web'], [WEB, 'ROOTCA']),
};

const of = (input: Partial<ServingInput>) => workloadServing({ ...base, ...input }).get('web');

t.test('serving: Envoy runs, the listener is served and Envoy accepted it and its certificate', async (t) => {
  t.same(of({}), { serving: true, reason: 'Envoy serves its mesh listener on port 18080' });
  t.same(of({ envoy: { state: 'hot-restarting' } })?.serving, true, 'the old epoch serves during a hot restart');
  t.same(of({ envoy: undefined })?.serving, true, 'an Envoy the agent does not run is judged by its acknowledgements');
});

t.test('not serving, with the reason that names the cause', async (t) => {
  t.same(of({ envoy: { state: 'backoff', lastExit: { code: 1, signal: null } } }), {
    serving: false,
    reason: 'Envoy is backoff (last exit: exit code 1)',
  });
  t.same(of({ envoy: { state: 'starting' } })?.reason, 'Envoy is starting');
  t.same(
    of({ envoy: { state: 'stopped', lastExit: { code: null, signal: 'SIGKILL' } } })?.reason,
    'Envoy is stopped (last exit: signal SIGKILL)',
  );
  t.same(
    of({
      problems: [{ workload: 'web', part: 'inbound', reason: `waiting for its SVID (${WEB})` }],
      svidErrors: new Map([[WEB, 'MESH_E_NOT_AUTHORIZED: not allowed']]),
      servedListeners: new Set(),
      acked: NOTHING_ACKED,
    })?.reason,
    `waiting for its SVID (${WEB}): MESH_E_NOT_AUTHORIZED: not allowed`,
  );
  t.same(of({ servedListeners: undefined, acked: NOTHING_ACKED })?.reason, 'not in the configuration yet');
  t.same(
    of({ servedListeners: new Set(), snapshotError: 'dangling reference', acked: NOTHING_ACKED })?.reason,
    'its configuration was refused: dangling reference',
  );
  t.same(
    of({ acked: acked([], []), rejected: new Map([['LDS', 'bad filter']]) })?.reason,
    'Envoy has not accepted its listener yet (Envoy rejected LDS: bad filter)',
  );
  t.same(of({ acked: acked(['inbound:web'], ['ROOTCA']) })?.reason, 'Envoy has not accepted its certificate yet');
});

t.test('an upstream problem does not stop the workload serving; other workloads are judged alone', async (t) => {
  t.equal(of({ problems: [{ workload: 'web', part: 'upstream', reason: 'upstream api: local port 9001 is used' }] })?.serving, true);
  const both = workloadServing({
    ...base,
    workloads: [web, { name: 'api', spiffeId: 'spiffe://example.org/ns/default/sa/api', meshPort: 19090 }],
  });
  t.equal(both.get('web')?.serving, true);
  t.same(both.get('api'), { serving: false, reason: 'not in the configuration yet' });
});
