/**
 * `npm run demo -- --k8s --check` as an operator runs it (the compiled
 * script, as root): the demo starts its own kube-apiserver and etcd, orders
 * (the pods) shows up in Consul with the pods' identity, billing on the VM
 * reaches both pods with its SPIFFE ID, the sync writes billing into
 * Kubernetes, and a pod reaches it with spiffe://example.org/ns/<ns>/sa/orders
 * both through its upstream port and (the other pod, transparent proxy) at the
 * address of the synced EndpointSlice;
 * exit 0, and no namespace or process of the demo is left.
 */
import path from 'node:path';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, processesWith, untracked } from '../support/child.js';
import { listNetns, NETNS_TAG_ENV, privilegedSkipReason } from '../support/netns.js';

const skip = await privilegedSkipReason();
t.setTimeout(480_000);

t.test('npm run demo -- --k8s --check', { skip: skip ?? false }, async (t) => {
  const script = path.join(repoRoot(), 'dist', 'scripts', 'demo.js');
  const [command, args] = untracked(process.execPath, [script, '--k8s', '--check']);
  const result = await run(command, args, { env: { ...childEnv(), [NETNS_TAG_ENV]: 'dk' }, timeoutMs: 420_000 });
  if (result.code !== 0) t.comment(`${result.stdout}\n${result.stderr.slice(-4000)}`);
  t.equal(result.code, 0, 'exit 0');
  t.match(result.stdout, /started {2}kube-apiserver 1\.37\.2 and etcd 3\.7\.3 on https:\/\/127\.0\.0\.1:\d+/);
  t.match(
    result.stdout,
    /synced {3}orders at 10\.77\.0\.2 on node k8s-demo, identity spiffe:\/\/example\.org\/ns\/shop-[0-9a-f]+\/sa\/orders/,
  );
  t.match(result.stdout, /synced {3}orders at 10\.77\.0\.3 on node k8s-demo/);
  t.match(result.stdout, /answer {3}orders-a \(pod 10\.77\.0\.2\) saw peer spiffe:\/\/example\.org\/ns\/vms\/sa\/billing\n/);
  t.match(result.stdout, /answer {3}orders-b \(pod 10\.77\.0\.3\) saw peer spiffe:\/\/example\.org\/ns\/vms\/sa\/billing\n/);
  t.match(result.stdout, /synced {3}EndpointSlice mesh-vms\/\S+: 10\.77\.0\.4 /);
  t.match(
    result.stdout,
    /\(pod orders-a calls billing through its Envoy\)\nanswer {3}billing \(VM 10\.77\.0\.4\) saw peer spiffe:\/\/example\.org\/ns\/shop-[0-9a-f]+\/sa\/orders\n/,
  );
  t.match(
    result.stdout,
    /curl http:\/\/10\.77\.0\.4:8080\/ +\(pod orders-b calls the synced Service's endpoint.*\nanswer {3}billing \(VM 10\.77\.0\.4\) saw peer spiffe:\/\/example\.org\/ns\/shop-[0-9a-f]+\/sa\/orders\n/,
    "orders-b's captured call to the address of the synced EndpointSlice reached billing with the pod's ID",
  );
  t.match(
    result.stdout,
    /\nServiceIdentity +k8s-demo-shop-[0-9a-f]+-orders +1 +\d+ +\S+ +k8s-sync:demo\n/,
    'the sync keeps the ServiceIdentity of orders',
  );
  t.match(
    result.stdout,
    /\nk8s\.demo\.shop-[0-9a-f]+\.orders-a +active .* spiffe:\/\/example\.org\/ns\/shop-[0-9a-f]+\/sa\/orders\n/,
    "the pod's node record, from its token, may hold only the pod's ID",
  );
  t.match(result.stdout, /demo check passed/);
  t.match(result.stdout, /\bdk[0-9a-f]{6}-h\d\b/, "the demo's hosts are network namespaces with the tag this test gave it");
  t.same(
    // The demo's network ids start with its own tag: other tests' namespaces, made meanwhile, are not its.
    (await listNetns()).filter((ns) => ns.startsWith('dk')),
    [],
    'no namespace of the demo is left',
  );
  t.same(
    [...processesWith('mesh-demo-k8s-'), ...processesWith('mesh-demo-kube-')].map((p) => p.args.join(' ')),
    [],
    'no process of the demo is left',
  );
});
