/**
 * Listening sockets from /proc/net/{tcp,tcp6,udp,udp6} (pure parsing), and
 * which process holds a socket (its /proc/<pid>/fd links), for doctor's port
 * check.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

export interface ListeningSocket {
  protocol: 'tcp' | 'udp';
  /** The bound address as the kernel prints it (hex), kept for messages. */
  address: string;
  port: number;
  inode: string;
}

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

/** The sockets of one /proc/net table that accept connections (TCP LISTEN) or datagrams (UDP bound, unconnected). */
export function parseProcNet(text: string, protocol: 'tcp' | 'udp'): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const [address, portHex] = (cols[1] ?? '').split(':');
    const state = cols[3];
    if (state !== (protocol === 'tcp' ? TCP_LISTEN : UDP_UNCONNECTED) || portHex === undefined) continue;
    out.push({ protocol, address: address ?? '', port: Number.parseInt(portHex, 16), inode: cols[9] ?? '' });
  }
  return out;
}

export async function readListeningSockets(proc = '/proc'): Promise<ListeningSocket[]> {
  const tables: Array<[string, 'tcp' | 'udp']> = [
    ['tcp', 'tcp'],
    ['tcp6', 'tcp'],
    ['udp', 'udp'],
    ['udp6', 'udp'],
  ];
  const out: ListeningSocket[] = [];
  for (const [file, protocol] of tables) {
    const text = await readFile(`${proc}/net/${file}`, 'utf8').catch(() => '');
    out.push(...parseProcNet(text, protocol));
  }
  return out;
}

/** Scans /proc/<pid>/fd for links "socket:[inode]"; processes this user may not read are skipped. */
export async function socketOwners(inodes: ReadonlySet<string>, proc = '/proc'): Promise<Map<string, { pid: number; name: string }>> {
  const found = new Map<string, { pid: number; name: string }>();
  if (inodes.size === 0) return found;
  const pids = (await readdir(proc).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
  for (const pid of pids) {
    const fds = await readdir(`${proc}/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`${proc}/${pid}/fd/${fd}`).catch(() => '');
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      if (inode === undefined || !inodes.has(inode) || found.has(inode)) continue;
      const name = (await readFile(`${proc}/${pid}/comm`, 'utf8').catch(() => '?')).trim();
      found.set(inode, { pid: Number(pid), name });
    }
    if (found.size === inodes.size) break;
  }
  return found;
}
