/**
 * The configuration examples of docs/operations/kubernetes-identity.md are
 * valid as written: each ```yaml block whose first line names controlplane.yaml,
 * agent.yaml or a workload file parses against that file's schema (the
 * agent's through loadAgentConfig, with the kubernetes-mode checks).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadAgentConfig } from '../../../agent/config/load.js';
import { workloadSchema } from '../../../agent/workloads/schema.js';
import { controlplaneSchema } from '../../../controlplane/config/schema.js';
import { validateConfig } from '../../../lib/config-file.js';
import { repoRoot } from '../../../scripts/repo-root.js';
import { fencedBlocks } from '../../support/doc-blocks.js';
import { tempDir } from '../../support/temp-dir.js';

const doc = await readFile(path.join(repoRoot(), 'docs', 'operations', 'kubernetes-identity.md'), 'utf8');
const yamlBlocks = fencedBlocks(doc).filter((b) => b.lang === 'yaml');
const named = (name: string) => yamlBlocks.filter((b) => b.body.startsWith(`# ${name}`));

t.test('controlplane.yaml example', async (t) => {
  const [block] = named('controlplane.yaml');
  t.ok(block, 'the doc has one');
  const config = validateConfig(controlplaneSchema, parse(block?.body ?? ''), 'doc controlplane.yaml');
  t.same(config.kubernetes?.attestation?.allow, [
    { namespace: 'shop', serviceAccount: '*' },
    { namespace: 'team-*', serviceAccount: 'api' },
  ]);
  t.equal(config.kubernetes?.attestation?.nodeSvidTtl, 3600_000);
});

t.test('agent.yaml example', async (t) => {
  const [block] = named('agent.yaml');
  t.ok(block, 'the doc has one');
  const dir = await tempDir(t, 'kube-doc-');
  const file = path.join(dir, 'agent.yaml');
  await writeFile(file, block?.body ?? '');
  const config = await loadAgentConfig(file, {
    hostname: async () => 'web-0',
    joinedTrustDomain: async () => undefined,
    requireTrustDomain: true,
  });
  t.same(config.kubernetes, { mode: 'sidecar', tokenFiles: ['/var/run/secrets/mesh/token'], register: false });
});

t.test('workload example', async (t) => {
  const [block] = named('workloads.d/web.yaml');
  t.ok(block, 'the doc has one');
  const w = workloadSchema().parse(parse(block?.body ?? ''));
  t.match(w, { name: 'web', namespace: 'shop', serviceAccount: 'web' });
});
