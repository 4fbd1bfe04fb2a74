import path from 'node:path';
import t from 'tap';
import { run } from '../../../lib/exec.js';
import { repoRoot } from '../../../scripts/repo-root.js';

const main = path.join(repoRoot(), 'dist', 'scripts', 'package-main.js');

t.test('npm run package: bad flags are refused before anything is built', async (t) => {
  const bad = await run(process.execPath, [main, '--version', '1.0-1']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^package: MESH_E_USAGE: --version 1\.0-1: must be digits and dots/);
  const only = await run(process.execPath, [main, '--only', 'meshctl']);
  t.equal(only.code, 2);
  t.match(only.stderr, 'MESH_E_USAGE: --only meshctl: must be one of mesh-agent, mesh-controlplane');
  const unknown = await run(process.execPath, [main, '--bogus']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /MESH_E_USAGE: Unknown option '--bogus'/);
  const help = await run(process.execPath, [main, '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: npm run package/);
});
