/**
 * Every ```yaml block of docs/reference/policy.md is applied, in order, with
 * the real meshctl (dist/) to a real control plane in trust domain
 * example.org: the examples work as written. A block marked `invalid` must be
 * refused, and meshctl's error must be the one the document shows.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { POLICY_KINDS } from '../../lib/policy/schema.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { startTestControlPlane } from '../support/controlplane.js';
import { fencedBlocks } from '../support/doc-blocks.js';
import { meshctl } from '../support/policy.js';

t.setTimeout(180_000);

const DOC = 'docs/reference/policy.md';

t.test(`every YAML example of ${DOC} applies with meshctl`, async (t) => {
  const markdown = readFileSync(path.join(repoRoot(), DOC), 'utf8');
  const blocks = fencedBlocks(markdown);
  const yamlBlocks = blocks.filter((b) => b.lang === 'yaml');
  t.ok(yamlBlocks.length >= 8, `${yamlBlocks.length} YAML blocks`);
  const tcp = await startTestControlPlane({ trustDomain: 'example.org' });
  t.teardown(() => tcp.stop());

  const kinds = new Set<string>();
  for (const block of yamlBlocks) {
    const where = `${DOC}:${block.line}${block.attrs.file ? ` (${block.attrs.file})` : ''}`;
    const r = await meshctl(tcp, ['policy', 'apply', '-f', '-', '--json'], block.body);
    if ('invalid' in block.attrs) {
      t.equal(r.code, 1, `${where} is refused`);
      const shown = blocks.find((b) => b.lang === 'text' && b.line > block.line && b.body.startsWith('meshctl: MESH_E_POLICY_INVALID'));
      t.ok(shown, `${where}: the document shows the error`);
      t.equal(r.stderr.trim(), shown?.body.trim(), `${where}: the error shown is meshctl's`);
      continue;
    }
    t.equal(r.code, 0, `${where} applies: ${r.stderr}`);
    if (r.code !== 0) continue;
    const applied = JSON.parse(r.stdout) as { changes: Array<{ kind: string; name: string; action: string }> };
    t.ok(
      applied.changes.every((c) => c.action === 'created' || c.action === 'updated'),
      `${where}: ${applied.changes.map((c) => `${c.kind}/${c.name} ${c.action}`).join(', ')}`,
    );
    for (const c of applied.changes) kinds.add(c.kind);
  }
  t.same([...kinds].sort(), [...POLICY_KINDS].sort(), 'the document has a working example of every kind');
});
