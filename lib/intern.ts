/**
 * One copy of strings that repeat across a big parsed answer. JSON.parse makes
 * a new string for every value longer than 10 characters, so a catalog of
 * 1,000 services x 10 instances held the same node names and SPIFFE IDs
 * thousands of times over (about 200 KB of the agent's heap at 200 upstreams).
 * The table is bounded: past MAX_ENTRIES it starts over, which costs copies,
 * never correctness.
 */
const MAX_ENTRIES = 4096;

export interface Interner {
  (value: string): string;
  readonly size: number;
}

export function createInterner(maxEntries = MAX_ENTRIES): Interner {
  const table = new Map<string, string>();
  const intern = (value: string): string => {
    const known = table.get(value);
    if (known !== undefined) return known;
    if (table.size >= maxEntries) table.clear();
    table.set(value, value);
    return value;
  };
  return Object.defineProperty(intern, 'size', { get: () => table.size }) as Interner;
}
