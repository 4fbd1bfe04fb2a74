/**
 * Users and groups by name or number, from /etc/passwd and /etc/group: pure
 * parsers and resolvers, and one reader. Capture tells processes apart by
 * owner, so Envoy's uid and gid must be known before any rule is built.
 */
import { readFile } from 'node:fs/promises';
import { MeshError } from '../../lib/errors.js';

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
}

/** The account databases' text (passwd(5), group(5) format). */
export interface Accounts {
  readonly passwd: string;
  readonly group: string;
}

function fields(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

export function parsePasswd(text: string): PasswdEntry[] {
  return fields(text)
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2] ?? '') && /^\d+$/.test(f[3] ?? ''))
    .map((f) => ({ name: f[0] as string, uid: Number(f[2]), gid: Number(f[3]) }));
}

export function parseGroup(text: string): GroupEntry[] {
  return fields(text)
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[2] ?? ''))
    .map((f) => ({ name: f[0] as string, gid: Number(f[2]) }));
}

const NUMERIC = /^\d+$/;

/** A user by name or number; a number needs no entry (its primary gid is then unknown). */
export function resolveUser(nameOrNumber: string, passwd: string, field = 'envoy.user'): { uid: number; gid?: number; name?: string } {
  const entries = parsePasswd(passwd);
  if (NUMERIC.test(nameOrNumber)) {
    const uid = Number(nameOrNumber);
    const entry = entries.find((e) => e.uid === uid);
    return entry === undefined ? { uid } : { uid, gid: entry.gid, name: entry.name };
  }
  const entry = entries.find((e) => e.name === nameOrNumber);
  if (entry === undefined) {
    throw new MeshError(
      'MESH_E_TPROXY_USER',
      `${field}: user "${nameOrNumber}" does not exist; create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${nameOrNumber}) or set ${field} to an existing user or a numeric uid`,
      { details: { field, user: nameOrNumber } },
    );
  }
  return { uid: entry.uid, gid: entry.gid, name: entry.name };
}

/** A group by name or number; a number needs no entry. */
export function resolveGroup(nameOrNumber: string, group: string, field = 'envoy.group'): number {
  if (NUMERIC.test(nameOrNumber)) return Number(nameOrNumber);
  const entry = parseGroup(group).find((e) => e.name === nameOrNumber);
  if (entry === undefined) {
    throw new MeshError(
      'MESH_E_TPROXY_USER',
      `${field}: group "${nameOrNumber}" does not exist; create it (groupadd --system ${nameOrNumber}) or set ${field} to an existing group or a numeric gid`,
      { details: { field, group: nameOrNumber } },
    );
  }
  return entry.gid;
}

/** Reads /etc/passwd and /etc/group (a missing file reads as empty). */
export async function readAccounts(etc = '/etc'): Promise<Accounts> {
  const read = (name: string) => readFile(`${etc}/${name}`, 'utf8').catch(() => '');
  const [passwd, group] = await Promise.all([read('passwd'), read('group')]);
  return { passwd, group };
}
