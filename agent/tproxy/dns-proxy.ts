/**
 * The agent's split DNS proxy, the target of the opt-in DNS capture: the
 * capture rules redirect udp and tcp port 53 from local processes to it, on
 * 127.0.0.1:<transparentProxy.dns.port>. Names under the Consul domain go to
 * Consul's DNS; every other name goes to the host's own resolvers, read from
 * resolv.conf at start (which is never changed, so removing the rules restores
 * resolution exactly). Queries leave from the one source port the rules
 * exempt (dnsUpstreamSourcePort), so nothing loops. TCP queries are forwarded
 * over UDP and answered with the length prefix. A query no resolver answers
 * in time gets SERVFAIL, a broken one FORMERR; neither ever stops the proxy.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { answerFor, type DnsProxyStats, type Route, routingState } from './dns-routing.js';
import { serveTcp } from './dns-tcp.js';
import { openUpstreamSockets } from './dns-upstream.js';
import { type DnsServer, formatServer, readResolvConf } from './resolv-conf.js';
import { dnsUpstreamSourcePort } from './rules.js';

export type { DnsProxyStats } from './dns-routing.js';

export interface DnsProxyOptions {
  /** transparentProxy.dns.port; 0 picks a free port (tests). */
  readonly listenPort: number;
  /** transparentProxy.dns.consulAddress, host:port. */
  readonly consulAddress: string;
  /** transparentProxy.dns.domain: this name and the names under it go to Consul. */
  readonly domain: string;
  /** Where the host's resolvers are read from (default /etc/resolv.conf). */
  readonly resolvConfPath?: string;
  /** The host's resolvers, instead of reading resolvConfPath (tests). */
  readonly upstreams?: readonly DnsServer[];
  /** Where the listeners bind (default 127.0.0.1, where REDIRECT sends local IPv4 traffic; add ::1 for IPv6). */
  readonly listenAddresses?: readonly string[];
  /** Source port of upstream queries; default dnsUpstreamSourcePort(listenPort), 0 with listenPort 0. */
  readonly upstreamSourcePort?: number;
  /** How long one resolver has to answer before the next is tried (default 2 s). */
  readonly attemptTimeoutMs?: number;
  readonly clock: Clock;
  readonly log: Logger;
}

/** What status shows of the DNS proxy. */
export interface DnsProxyStatus {
  /** host:port the proxy answers on (UDP and TCP). */
  readonly listen: string;
  readonly sourcePort: number;
  readonly domain: string;
  readonly consul: string;
  readonly upstreams: readonly string[];
  readonly stats: DnsProxyStats;
}

export interface DnsProxy {
  /** The first listen address and the port bound (the same port on every address, UDP and TCP). */
  readonly address: { readonly host: string; readonly port: number };
  stats(): DnsProxyStats;
  status(): DnsProxyStatus;
  close(): Promise<void>;
}

export const DEFAULT_ATTEMPT_TIMEOUT_MS = 2_000;

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

async function consulServer(consulAddress: string): Promise<DnsServer> {
  const colon = consulAddress.lastIndexOf(':');
  const host = consulAddress.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(consulAddress.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new MeshError('MESH_E_CONFIG_INVALID', `transparentProxy.dns.consulAddress: "${consulAddress}" is not host:port`);
  }
  if (net.isIP(host) !== 0) return { address: host, port };
  const resolved = await lookup(host).catch((err: Error) => {
    throw new MeshError('MESH_E_DNS_PROXY', `transparentProxy.dns.consulAddress: cannot resolve "${host}": ${err.message}`, {
      cause: err,
    });
  });
  return { address: resolved.address, port };
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', ipv6Only: net.isIPv6(host) });
    socket.once('error', reject);
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function listenTcp(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** How many ports listenPort 0 tries: the UDP socket picks one, and another process may hold that number for TCP. */
const ANY_PORT_ATTEMPTS = 5;

const portTaken = (err: unknown): boolean => (err as { cause?: { code?: string } }).cause?.code === 'EADDRINUSE';

/**
 * Starts the proxy; it answers once this resolves. Fails with MESH_E_DNS_PROXY when a port is taken.
 * With listenPort 0 a port free for both UDP and TCP is found: when the port UDP got is taken
 * for TCP, it starts again on another.
 */
export async function startDnsProxy(options: DnsProxyOptions): Promise<DnsProxy> {
  return retryWhilePortTaken(options.listenPort === 0, () => startDnsProxyOnce(options));
}

/**
 * Runs `start` again while it fails because its port is taken (a cause with code EADDRINUSE),
 * when the port is any port (`anyPort`: the next try gets another one), at most `attempts`
 * times; any other failure, or a fixed port, fails at once.
 */
export async function retryWhilePortTaken<T>(anyPort: boolean, start: () => Promise<T>, attempts = ANY_PORT_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (!anyPort || attempt >= attempts || !portTaken(err)) throw err;
    }
  }
}

async function startDnsProxyOnce(options: DnsProxyOptions): Promise<DnsProxy> {
  const log = options.log.child({ component: 'dns-proxy' });
  const hosts = options.listenAddresses ?? ['127.0.0.1'];
  const upstreams = options.upstreams ?? (await readResolvConf(options.resolvConfPath));
  const consul = await consulServer(options.consulAddress);
  const route: Route = {
    domain: options.domain,
    consul,
    upstreams,
    attemptTimeoutMs: options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
  };
  const state = routingState();
  const { stats } = state;
  const udpSockets: dgram.Socket[] = [];
  const tcpServers: net.Server[] = [];
  const closers: (() => void)[] = [];
  let closed = false;
  const closeAll = async () => {
    closed = true;
    for (const close of closers.splice(0)) close();
    await Promise.all(tcpServers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await Promise.all(udpSockets.splice(0).map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  };

  let port = options.listenPort;
  try {
    const sourcePort = options.upstreamSourcePort ?? (port === 0 ? 0 : dnsUpstreamSourcePort(port));
    const ipv6 = [consul, ...upstreams].some((server) => net.isIPv6(server.address.replace(/%.*$/, '')));
    const sockets = await openUpstreamSockets({
      sourcePort,
      ipv6,
      clock: options.clock,
      onIpv6Unavailable: (err) => log.warn('no IPv6 socket for upstream queries; IPv6 resolvers are skipped', { err }),
    });
    closers.push(() => sockets.close());
    const resolve = (query: Buffer) => answerFor(query, route, sockets, state, log);
    for (const host of hosts) {
      const udp = await bindUdp(host, port);
      udpSockets.push(udp);
      port = udp.address().port;
      udp.on('error', (err) => log.warn('DNS proxy UDP socket error', { err }));
      udp.on('message', (message, rinfo) => {
        void resolve(message).then((answer) => {
          if (answer !== undefined && !closed) udp.send(answer, rinfo.port, rinfo.address);
        });
      });
      const tcp = serveTcp((query) => {
        stats.tcp += 1;
        return resolve(query);
      }, options.clock);
      tcpServers.push(tcp.server);
      closers.push(tcp.closeConnections);
      await listenTcp(tcp.server, host, port);
    }
    const status = (): DnsProxyStatus => ({
      listen: formatServer({ address: hosts[0] as string, port }),
      sourcePort: sockets.sourcePort,
      domain: options.domain,
      consul: formatServer(consul),
      upstreams: upstreams.map(formatServer),
      stats: { ...stats, inFlight: sockets.inFlight() },
    });
    log.info('DNS proxy listening', { ...status(), stats: undefined });
    const local = upstreams.filter((server) => isLoopback(server.address)).map(formatServer);
    if (local.length > 0) {
      // The capture rules match only queries sent to resolv.conf's servers, so the
      // stub's own upstream queries (to other addresses) are not looped back.
      log.info('the host resolver is a local stub (systemd-resolved, dnsmasq...): names outside the Consul domain go to it', {
        localResolvers: local,
      });
    }
    return {
      address: { host: hosts[0] as string, port },
      stats: () => status().stats,
      status,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    if (err instanceof MeshError) throw err;
    throw new MeshError(
      'MESH_E_DNS_PROXY',
      `the DNS proxy could not listen on ${hosts.join(', ')} port ${port} (udp/tcp) or its upstream port: ${(err as Error).message}; set transparentProxy.dns.port to a free port`,
      { cause: err, details: { port } },
    );
  }
}
