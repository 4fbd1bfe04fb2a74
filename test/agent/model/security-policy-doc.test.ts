/**
 * The policy examples of docs/design/security-policy.md work as written: every
 * ```yaml block parses against the policy schema, and the model and builders
 * turn them into valid Envoy listeners and clusters.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { inboundPolicy } from '../../../agent/model/inbound-policy.js';
import { acceptedIdentities } from '../../../agent/model/secure-naming.js';
import { buildInboundListener } from '../../../agent/xds/resources/inbound-listener.js';
import { peerSanMatchers } from '../../../agent/xds/resources/peer-sans.js';
import { checkMessage } from '../../../lib/envoy/protos.js';
import { TypeUrl } from '../../../lib/envoy/type-urls.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { repoRoot } from '../../../scripts/repo-root.js';
import { fencedBlocks } from '../../support/doc-blocks.js';

const DOC = 'docs/design/security-policy.md';
const blocks = fencedBlocks(readFileSync(path.join(repoRoot(), DOC), 'utf8')).filter((b) => b.lang === 'yaml');

t.test(`every yaml block of ${DOC} is a valid policy document`, async (t) => {
  t.ok(blocks.length >= 4, `${blocks.length} examples`);
  const docs: PolicyDocument[] = [];
  for (const b of blocks) {
    const parsed = parsePolicyDocument(parse(b.body));
    t.ok(parsed.ok, `example at line ${b.line}: ${parsed.ok ? parsed.document.kind : JSON.stringify(parsed.issues)}`);
    if (parsed.ok) docs.push(parsed.document);
  }
  t.same([...new Set(docs.map((d) => d.kind))].sort(), ['AuthorizationPolicy', 'PeerAuthentication', 'RateLimit', 'ServiceIdentity']);

  const api = { name: 'api', spiffeId: 'spiffe://example.org/ns/default/sa/api' };
  const { policy } = inboundPolicy(docs, api);
  const listener = buildInboundListener({ ...api, protocol: 'http', appPort: 9090, meshPort: 15002, inbound: policy }, 'example.org', {
    accessLogPath: '/tmp/a.log',
  });
  t.doesNotThrow(() => checkMessage(TypeUrl.Listener, listener), 'the examples make a valid listener');
  const accepted = acceptedIdentities(docs, 'example.org', 'api', 'default');
  t.same(
    peerSanMatchers(accepted.patterns)[0],
    {
      san_type: 'URI',
      matcher: { safe_regex: { regex: '^spiffe://example\\.org/ns/canary/sa/[^/]+$' } },
    },
    'the regex the doc shows',
  );
});
