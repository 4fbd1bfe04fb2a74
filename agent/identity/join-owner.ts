/**
 * Who owns what `mesh-agent join` writes. On a packaged host the agent runs
 * as the `mesh-agent` user, but join is run by root (sudo): the node key and
 * SVID must still belong to mesh-agent, or the service could not read them.
 * The owner is: --owner when given; else, when join runs as root, the owner
 * of the data folder when that is not root (the package or an earlier start
 * made it), else the `mesh-agent` user when it exists; else nobody is changed
 * (a non-root join writes as itself).
 */
import { lchown, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { type Accounts, parsePasswd } from '../tproxy/accounts.js';
import { identityDir } from './identity-store.js';

export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
  readonly name: string;
}

/** The service's user on a packaged host. */
export const AGENT_USER = 'mesh-agent';

export interface OwnerInput {
  dataDir: string;
  /** --owner: a user name or a numeric uid. */
  flag?: string;
  /** Our effective uid. */
  euid: number;
  accounts(): Promise<Accounts>;
}

export async function resolveJoinOwner(input: OwnerInput): Promise<FileOwner | undefined> {
  const users = parsePasswd((await input.accounts()).passwd);
  if (input.flag !== undefined) {
    const user = /^\d+$/.test(input.flag) ? users.find((u) => u.uid === Number(input.flag)) : users.find((u) => u.name === input.flag);
    if (user === undefined)
      throw new MeshError('MESH_E_USAGE', `--owner ${input.flag}: no such user in /etc/passwd`, { details: { flag: 'owner' } });
    return user;
  }
  if (input.euid !== 0) return undefined;
  const dir = await stat(input.dataDir).catch(() => undefined);
  if (dir !== undefined && dir.uid !== 0) {
    const user = users.find((u) => u.uid === dir.uid);
    return { uid: dir.uid, gid: dir.gid, name: user?.name ?? String(dir.uid) };
  }
  return users.find((u) => u.name === AGENT_USER);
}

/** Gives the data folder and everything in its identity folder to the owner (links are not followed). */
export async function giveIdentityTo(dataDir: string, owner: FileOwner): Promise<void> {
  const dir = identityDir(dataDir);
  await lchown(dataDir, owner.uid, owner.gid);
  await lchown(dir, owner.uid, owner.gid);
  for (const name of await readdir(dir)) await lchown(path.join(dir, name), owner.uid, owner.gid);
}
