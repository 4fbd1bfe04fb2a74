/** Join tokens: random, shown once, stored only as a SHA-256 hash. */
import { createHash, randomBytes } from 'node:crypto';

const PREFIX = 'mjt1_';

export function newJoinToken(random: (n: number) => Buffer = randomBytes): string {
  return `${PREFIX}${random(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Cheap shape check before touching the store (a malformed token is simply unknown). */
export function looksLikeToken(token: string): boolean {
  return token.startsWith(PREFIX) && token.length === PREFIX.length + 43;
}
