/**
 * One query through the split DNS proxy: read it, pick the resolvers (Consul
 * for the Consul domain, else the host's own in resolv.conf order), ask them
 * in turn until one answers, and give the client that answer under its own
 * transaction ID. A resolver that times out, cannot be reached, or answers
 * SERVFAIL/REFUSED while another is left, is skipped. The proxy answers
 * SERVFAIL itself when none answers, FORMERR (or NOTIMP) to a query it cannot
 * read, and drops what is too short to answer. Identical queries in flight
 * share one upstream query.
 */
import type { Logger } from '../../lib/logger.js';
import { errorAnswer, nameInDomain, parseQuery, RCODE, rcodeOf, withId } from './dns-message.js';
import type { UpstreamSockets } from './dns-upstream.js';
import { type DnsServer, formatServer } from './resolv-conf.js';

/** Counters since the proxy started. */
export interface DnsProxyStats {
  /** Every message received (UDP datagrams and TCP messages). */
  queries: number;
  /** Of those, the ones that came over TCP (forwarded over UDP). */
  tcp: number;
  /** Queries that shared the answer of an identical query being forwarded (not sent again). */
  shared: number;
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
  return { queries: 0, tcp: 0, shared: 0, toConsul: 0, toUpstream: 0, answered: 0, failures: 0, timeouts: 0, malformed: 0, inFlight: 0 };
}

export interface Route {
  readonly domain: string;
  readonly consul: DnsServer;
  readonly upstreams: readonly DnsServer[];
  readonly attemptTimeoutMs: number;
}

/** The proxy's mutable part: its counters, and the queries being forwarded now, by their bytes after the ID. */
export interface RoutingState {
  readonly stats: DnsProxyStats;
  readonly forwarding: Map<string, Promise<Buffer | undefined>>;
}

export function routingState(): RoutingState {
  return { stats: emptyStats(), forwarding: new Map() };
}

/** Asks the route's resolvers in turn; the first usable answer (with the wire ID of the query), or undefined when none answered. */
async function forward(
  query: Buffer,
  questionEnd: number,
  servers: readonly DnsServer[],
  route: Route,
  sockets: UpstreamSockets,
  stats: DnsProxyStats,
  log: Logger,
): Promise<Buffer | undefined> {
  for (const [i, server] of servers.entries()) {
    const result = await sockets.exchange(query, questionEnd, server, route.attemptTimeoutMs);
    const last = i === servers.length - 1;
    if (result.kind === 'answer') {
      const rcode = rcodeOf(result.message);
      if (!last && (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED)) continue;
      return result.message;
    }
    if (result.kind === 'timeout') stats.timeouts += 1;
    const detail = result.kind === 'error' ? { err: result.error } : { timeoutMs: route.attemptTimeoutMs };
    log.debug(`DNS resolver did not answer (${result.kind})`, { server: formatServer(server), ...detail });
  }
  return undefined;
}

/**
 * The answer to send back to the client, or undefined to send nothing. A
 * query identical to one being forwarded (all bytes but the ID: same name,
 * type, flags and EDNS) shares its answer instead of being sent again. This
 * also bounds a loop (a local resolver whose own queries come back captured):
 * the looped query waits on itself and fails after the timeout, instead of
 * multiplying.
 */
export async function answerFor(
  query: Buffer,
  route: Route,
  sockets: UpstreamSockets,
  state: RoutingState,
  log: Logger,
): Promise<Buffer | undefined> {
  const { stats } = state;
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
  const key = query.toString('latin1', 2);
  let answer = state.forwarding.get(key);
  if (answer === undefined) {
    const servers = toConsul ? [route.consul] : route.upstreams;
    answer = forward(query, parsed.questionEnd, servers, route, sockets, stats, log).finally(() => state.forwarding.delete(key));
    state.forwarding.set(key, answer);
  } else {
    stats.shared += 1;
  }
  const message = await answer;
  if (message === undefined) {
    stats.failures += 1;
    return errorAnswer(query, RCODE.SERVFAIL, parsed.questionEnd);
  }
  stats.answered += 1;
  return withId(message, parsed.id);
}
