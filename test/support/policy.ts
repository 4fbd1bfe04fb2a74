/**
 * Policy through the real `meshctl` (the built dist/ program) against a test
 * control plane, as an operator applies it: for tests that need policy stored
 * on a control plane (`applyPolicies(cp, yaml)`).
 */
import path from 'node:path';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { untracked } from './child.js';

export interface MeshctlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Anything with the control plane's data dir: a TestControlPlane, a ControlPlaneProcess. */
export interface HasDataDir {
  readonly dataDir: string;
}

/** `meshctl ARGS --data-dir <cp>` (dist/), with `input` on stdin when given (no TTY). */
export async function meshctl(cp: HasDataDir, args: readonly string[], input?: string): Promise<MeshctlResult> {
  const main = path.join(repoRoot(), 'dist', 'controlplane', 'cli', 'main.js');
  const [command, argv] = untracked(process.execPath, [main, ...args, '--data-dir', cp.dataDir]);
  const r = await run(command, argv, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

export interface AppliedPolicies {
  revision: number;
  changes: Array<{ kind: string; name: string; action: 'created' | 'updated' | 'unchanged' }>;
}

/** `meshctl policy apply -f - --json` with yamlText on stdin; throws with meshctl's stderr when it fails. */
export async function applyPolicies(cp: HasDataDir, yamlText: string): Promise<AppliedPolicies> {
  const r = await meshctl(cp, ['policy', 'apply', '-f', '-', '--json'], yamlText);
  if (r.code !== 0) throw new Error(`meshctl policy apply exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as AppliedPolicies;
}
