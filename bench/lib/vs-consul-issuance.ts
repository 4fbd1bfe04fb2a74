/**
 * STUB of the lead's module (issue 16: certificates, our control plane vs
 * Consul's leaf-certificate API). The lead's version replaces this file on
 * merge; bench/vs-consul only relies on the interface below.
 */
export interface IssuanceComparison {
  /** Markdown tables. */
  tables: string[];
}

export async function compareIssuance(o: {
  consulHttpAddr: string;
  concurrency: number;
  seconds: number;
  log: (line: string) => void;
}): Promise<IssuanceComparison> {
  o.log(`issuance: not implemented in this branch (stub; Consul at ${o.consulHttpAddr}, ${o.concurrency} callers, ${o.seconds} s)`);
  return { tables: [] };
}
