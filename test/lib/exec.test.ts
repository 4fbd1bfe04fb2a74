import t from 'tap';
import { run, runChecked } from '../../lib/exec.js';

t.test('run returns output, exit code and passes input', async (t) => {
  const result = await run(process.execPath, ['-e', 'process.stdin.pipe(process.stdout); console.error("to stderr")'], {
    input: 'hello',
  });
  t.equal(result.code, 0);
  t.equal(result.stdout, 'hello');
  t.match(result.stderr, /to stderr/);
});

t.test('runChecked: non-zero exit becomes a MeshError with stderr', async (t) => {
  const progress: string[] = [];
  await t.rejects(
    runChecked(process.execPath, ['-e', 'console.error("broken pipe"); process.exit(4)'], 'MESH_E_PROVISION_FAILED', {
      onStderr: (chunk) => progress.push(chunk),
    }),
    { code: 'MESH_E_PROVISION_FAILED', message: /exited with 4:\nbroken pipe/, details: { exitCode: 4 } },
  );
  t.match(progress.join(''), /broken pipe/, 'stderr streamed as progress');
  const ok = await runChecked(process.execPath, ['-e', 'console.log("fine")'], 'MESH_E_INTERNAL', { cwd: '/' });
  t.equal(ok.stdout, 'fine\n');
});

t.test('runChecked: a missing program and a timeout', async (t) => {
  await t.rejects(runChecked('/nonexistent/program', [], 'MESH_E_NETNS'), { code: 'MESH_E_NETNS', message: /could not run/ });
  await t.rejects(run('/nonexistent/program', []), { code: 'ENOENT' });
  await t.rejects(runChecked(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], 'MESH_E_INTERNAL', { timeoutMs: 200 }), {
    message: /killed by SIGKILL/,
  });
});
