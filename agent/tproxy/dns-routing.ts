/**
 * One query through the split DNS proxy: read it, pick the resolvers (Consul
 * for the Consul domain, else the host's own in resolv.conf order), ask them
 * in turn until one answers, and give the client that answer under its own
 * transaction ID. A resolver that times out, cannot be reached, or answers
 * SERVFAIL/REFUSED while another is left, is skipped. The proxy answers
 * SERVFAIL itself when none answers, FORMERR (or NOTIMP) to a query it cannot
 * read, and drops what is too short to answer.
 */
import type { Logger } from '../../lib/logger.js';
import { errorAnswer, nameInDomain, parseQuery, RCODE, rcodeOf, withId } from './dns-message.js';
import type { UpstreamSockets } from './dns-upstream.js';
import { type DnsServer, formatServer } from './resolv-conf.js';

/** Counters since the proxy started. */
export interface DnsProxyStats {
  /** Every message received (UDP datagrams and TCP messages). */
  queries: number;
  /** Queries for the Consul domain, sent to Consul's DNS. */
  toConsul: number;
  /** Queries for other names, sent to the host's resolvers. */
  toUpstream: number;
  /** Answers relayed from a resolver. */
  answered: number;
  /** Queries the proxy answered SERVFAIL because no resolver answered. */
  failures: number;
  /** Resolver attempts that timed out (each one, retried or not). */
  timeouts: number;
  /** Queries that could not be read (answered FORMERR/NOTIMP, or dropped when too short). */
  malformed: number;
  /** Upstream queries waiting for an answer now. */
  inFlight: number;
}

export function emptyStats(): DnsProxyStats {
  return { queries: 0, toConsul: 0, toUpstream: 0, answered: 0, failures: 0, timeouts: 0, malformed: 0, inFlight: 0 };
}

export interface Route {
  readonly domain: string;
  readonly consul: DnsServer;
  readonly upstreams: readonly DnsServer[];
  readonly attemptTimeoutMs: number;
}

/** The answer to send back to the client, or undefined to send nothing. */
export async function answerFor(
  query: Buffer,
  route: Route,
  sockets: UpstreamSockets,
  stats: DnsProxyStats,
  log: Logger,
): Promise<Buffer | undefined> {
  stats.queries += 1;
  const parsed = parseQuery(query);
  if (!parsed.ok) {
    stats.malformed += 1;
    log.debug('unreadable DNS query', { reason: parsed.reason, bytes: query.length });
    return parsed.id === undefined ? undefined : errorAnswer(query, parsed.rcode);
  }
  const toConsul = nameInDomain(parsed.question.labels, route.domain);
  if (toConsul) stats.toConsul += 1;
  else stats.toUpstream += 1;
  const servers = toConsul ? [route.consul] : route.upstreams;
  for (const [i, server] of servers.entries()) {
    const result = await sockets.exchange(query, parsed.questionEnd, server, route.attemptTimeoutMs);
    const last = i === servers.length - 1;
    if (result.kind === 'answer') {
      const rcode = rcodeOf(result.message);
      if (!last && (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED)) continue;
      stats.answered += 1;
      return withId(result.message, parsed.id);
    }
    if (result.kind === 'timeout') stats.timeouts += 1;
    const detail = result.kind === 'error' ? { err: result.error } : { timeoutMs: route.attemptTimeoutMs };
    log.debug(`DNS resolver did not answer (${result.kind})`, { server: formatServer(server), ...detail });
  }
  stats.failures += 1;
  return errorAnswer(query, RCODE.SERVFAIL, parsed.questionEnd);
}
