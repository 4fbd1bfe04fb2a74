/**
 * The host's own resolvers, read from resolv.conf the way glibc reads them:
 * the `nameserver` lines in order, at most three, port 53; none at all means
 * the local host (127.0.0.1). The file is only read, never written: the DNS
 * capture leaves the host's resolver configuration exactly as it was.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { MeshError } from '../../lib/errors.js';

export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
/** glibc's MAXNS: later nameserver lines are ignored. */
const MAX_NAMESERVERS = 3;

export interface DnsServer {
  /** An IPv4 or IPv6 address (an IPv6 link-local one may carry its %zone). */
  readonly address: string;
  readonly port: number;
}

export function formatServer(server: DnsServer): string {
  return server.address.includes(':') ? `[${server.address}]:${server.port}` : `${server.address}:${server.port}`;
}

/** The nameservers of resolv.conf text; [127.0.0.1:53] when there are none, as glibc does. */
export function parseResolvConf(text: string): DnsServer[] {
  const servers: DnsServer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, address] = line.split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined) continue;
    if (isIP(address.replace(/%.*$/, '')) === 0) continue;
    if (servers.length < MAX_NAMESERVERS) servers.push({ address, port: 53 });
  }
  return servers.length > 0 ? servers : [{ address: '127.0.0.1', port: 53 }];
}

/** Reads the host's resolvers; a missing file means glibc's default (the local host); an unreadable one is MESH_E_DNS_PROXY. */
export async function readResolvConf(file = DEFAULT_RESOLV_CONF): Promise<DnsServer[]> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MeshError('MESH_E_DNS_PROXY', `cannot read the host's resolvers from ${file}: ${(err as Error).message}`, {
        cause: err,
        details: { file },
      });
    }
  }
  return parseResolvConf(text);
}
