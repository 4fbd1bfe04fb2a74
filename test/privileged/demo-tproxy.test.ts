/**
 * `npm run demo -- --tproxy --check` as the README shows it (the compiled
 * script, as root): web calls api by address and by api.service.consul with
 * no upstream port, both arrive with web's SPIFFE ID, the outsider is refused,
 * `tproxy status` shows no drift, and the demo leaves no namespace behind.
 */

import path from 'node:path';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, untracked } from '../support/child.js';
import { listNetns, NETNS_TAG_ENV, privilegedSkipReason } from '../support/netns.js';

const skip = await privilegedSkipReason();
t.setTimeout(300_000);

t.test('npm run demo -- --tproxy --check', { skip: skip ?? false }, async (t) => {
  const script = path.join(repoRoot(), 'dist', 'scripts', 'demo.js');
  const [command, args] = untracked(process.execPath, [script, '--tproxy', '--check']);
  const result = await run(command, args, { env: { ...childEnv(), [NETNS_TAG_ENV]: 'dt' }, timeoutMs: 240_000 });
  if (result.code !== 0) t.comment(`${result.stdout}\n${result.stderr.slice(-3000)}`);
  t.equal(result.code, 0, 'exit 0');
  t.match(result.stdout, /curl http:\/\/10\.77\.0\.3:8080\/\nanswer {3}api saw peer spiffe:\/\/example\.org\/ns\/default\/sa\/web/);
  t.match(
    result.stdout,
    /curl http:\/\/api\.service\.consul:8080\/.*\nanswer {3}api saw peer spiffe:\/\/example\.org\/ns\/default\/sa\/web/,
  );
  t.match(result.stdout, /refused {2}c \(outside the mesh\)/);
  t.match(result.stdout, /drift +none/);
  t.notMatch(result.stdout, / 0 rules;/, 'status counted the installed rules');
  t.match(result.stdout, /demo check passed/);
  t.match(result.stdout, /\bdt[0-9a-f]{6}-h\d\b/, "the demo's hosts are network namespaces with the tag this test gave it");
  t.same(
    // The demo's network ids start with its own tag: other tests' namespaces, made meanwhile, are not its.
    (await listNetns()).filter((ns) => ns.startsWith('dt')),
    [],
    'no namespace of the demo is left',
  );
});
