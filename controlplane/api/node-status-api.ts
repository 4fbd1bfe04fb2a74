/**
 * The NodeStatus gRPC service: Report, an agent's sync status (what its Envoy
 * acknowledged, NACKs, policy revision, workload health, SVID expiry,
 * versions). Served on the Identity API's mTLS server: the node is the one
 * its client certificate names (never a field of the report), it must be on
 * record and active. Each report replaces the node's previous one and marks
 * the node seen; the answer tells the agent how often to send a heartbeat.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { NodeStatusReportWire } from '../../lib/proto/node-status.js';
import type { IdentityService } from '../identity-service.js';
import type { NodeStatusBook } from '../status/node-status-book.js';
import type { NodeRepo } from '../store/node-repo.js';
import { peerCertificate, unary } from './handlers.js';

/** Agents report this often when nothing changes: three heartbeats fit in staleAfter. */
export function heartbeatMs(staleAfterMs: number): number {
  return Math.max(1_000, Math.floor(staleAfterMs / 3));
}

export function nodeStatusHandlers(deps: {
  identity: IdentityService;
  nodes: NodeRepo;
  book: NodeStatusBook;
  clock: Clock;
  staleAfterMs: number;
  logger: Logger;
}): grpc.UntypedServiceImplementation {
  const { identity, book, clock, logger } = deps;
  const seen = new Set<string>();
  return {
    Report: unary(logger, 'NodeStatus.Report', (report: NodeStatusReportWire, call) => {
      const node = identity.authenticate(peerCertificate(call)).node;
      identity.requireActive(node);
      const now = clock.now();
      book.record(node, report, now);
      deps.nodes.touch(node, now);
      if (!seen.has(node)) {
        seen.add(node);
        logger.info('first status report from node', { node, agentVersion: report.agent_version, envoyVersion: report.envoy_version });
      }
      return { heartbeat_ms: heartbeatMs(deps.staleAfterMs) };
    }),
  };
}
