/** `npm run bench -- <name>`: runs bench/<name>.ts (compiled) and lets it print its table; helpers live in bench/lib. */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './repo-root.js';

const benchDir = path.join(repoRoot(), 'dist', 'bench');
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3));
const name = process.argv[2];
if (name === undefined || name === '--help' || name === '-h' || !existsSync(path.join(benchDir, `${name}.js`))) {
  process.stderr.write(`Usage: npm run bench -- <name>\n\nBenchmarks: ${available.join(', ')}\n`);
  process.exit(name === '--help' || name === '-h' ? 0 : 2);
}
await import(pathToFileURL(path.join(benchDir, `${name}.js`)).href);
