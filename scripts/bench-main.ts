/** `npm run bench -- <name>`: runs bench/<name>.ts (compiled) and lets it print its table; helpers live in bench/lib. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './repo-root.js';

const benchDir = path.join(repoRoot(), 'dist', 'bench');
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3));
const name = process.argv[2];
const help = name === '--help' || name === '-h';
// Only a benchmark of the list runs: a name is never a path (`../scripts/x` is refused, not imported).
if (name === undefined || help || !available.includes(name)) {
  if (name !== undefined && !help) process.stderr.write(`MESH_E_USAGE: no benchmark named "${name}"\n\n`);
  process.stderr.write(`Usage: npm run bench -- <name>\n\nBenchmarks: ${available.join(', ')}\n`);
  process.exit(help ? 0 : 2);
}
await import(pathToFileURL(path.join(benchDir, `${name}.js`)).href);
