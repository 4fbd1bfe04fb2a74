/** Pod attestations in the control plane's metrics: an accepted one is a node SVID issued, a refusal a denial by its code. */
import t from 'tap';
import { createControlPlaneMetrics } from '../../../controlplane/metrics/controlplane-metrics.js';
import { sampleValue as value } from '../../support/prometheus.js';

t.test('AttestKubernetes: issued node SVIDs, denials by code, durations by result', async (t) => {
  const m = createControlPlaneMetrics({ version: '0.1.0' });
  m.recordCall('AttestKubernetes', 30);
  m.recordCall('AttestKubernetes', 12, 'MESH_E_KUBE_POD_GONE');
  const text = await m.registry.metrics();
  t.equal(value(text, 'mesh_controlplane_svids_issued_total{kind="node"}'), 1);
  t.equal(value(text, 'mesh_controlplane_denials_total{method="AttestKubernetes",code="MESH_E_KUBE_POD_GONE"}'), 1);
  t.equal(value(text, 'mesh_controlplane_request_duration_seconds_count{method="AttestKubernetes",result="ok"}'), 1);
});
