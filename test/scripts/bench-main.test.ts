/** `npm run bench -- <name>` (dist/scripts/bench-main.js, as npm runs it): the list, an unknown name, a path. */
import path from 'node:path';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';

const main = path.join(repoRoot(), 'dist', 'scripts', 'bench-main.js');

async function bench(...args: string[]): Promise<{ code: number | null; stderr: string }> {
  const { code, stderr } = await run(process.execPath, [main, ...args], { timeoutMs: 30_000 });
  return { code, stderr };
}

t.test('--help lists the benchmarks and exits 0', async (t) => {
  const r = await bench('--help');
  t.equal(r.code, 0);
  t.match(r.stderr, /^Usage: npm run bench -- <name>\n\nBenchmarks: .*\bvs-consul\b.*\bxds\b/);
  t.notMatch(r.stderr, /MESH_E_USAGE/);
});

t.test('an unknown name is named in the error, with the list, exit 2', async (t) => {
  const r = await bench('nope');
  t.equal(r.code, 2);
  t.match(r.stderr, /^MESH_E_USAGE: no benchmark named "nope"\n\nUsage: npm run bench -- <name>\n\nBenchmarks: .*vs-consul/);
});

t.test('a path is not a benchmark: nothing outside bench/ is imported', async (t) => {
  const r = await bench('../scripts/repo-root');
  t.equal(r.code, 2);
  t.match(r.stderr, /MESH_E_USAGE: no benchmark named "\.\.\/scripts\/repo-root"/);
});

t.test('no name: the usage, exit 2', async (t) => {
  const r = await bench();
  t.equal(r.code, 2);
  t.match(r.stderr, /^Usage: npm run bench -- <name>/);
});
