/**
 * The edge to the host's iptables: `*-save` and `*-restore` of one backend
 * (nft or legacy) and one address family. Everything else in agent/tproxy is
 * pure. The real runner (exec) and backend detection live in runner-exec.ts;
 * test/fakes/iptables.ts is the shared fake.
 */
import type { IptablesBackend } from './rules.js';

export type IpFamily = 'ipv4' | 'ipv6';

export interface IptablesRunner {
  readonly backend: IptablesBackend;
  /** `iptables-save -t <table>` (or ip6tables-save) output; "" when the table does not exist. */
  save(family: IpFamily, table: string): Promise<string>;
  /** Feeds iptables-restore `input` with --noflush: one table's transaction, applied atomically or not at all. */
  restore(family: IpFamily, input: string): Promise<void>;
}
