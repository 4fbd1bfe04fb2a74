/** processRef / killIfSame: a pid is signalled only while it names the process that was seen. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { killIfSame, processRef, sameProcess } from './child.js';

t.test('a ref names the running process by pid and start time', async (t) => {
  const self = processRef(process.pid);
  t.ok(self !== undefined && /^\d+$/.test(self.start), 'this process has a start time');
  t.ok(self !== undefined && sameProcess(self));
  t.equal(processRef(undefined), undefined);
});

t.test('a pid whose start time differs (reused) is left alone', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const ref = processRef(child.pid);
  if (ref === undefined) throw new Error('no ref for the sleep child');
  const stranger = { pid: ref.pid, start: String(Number(ref.start) + 1) };
  t.notOk(sameProcess(stranger));
  t.notOk(killIfSame(stranger, 'SIGKILL'), 'not signalled');
  t.equal(child.exitCode, null);
  t.ok(sameProcess(ref), 'the child still runs');
  t.ok(killIfSame(ref, 'SIGKILL'), 'the seen process is signalled');
  const [, signal] = await once(child, 'exit');
  t.equal(signal, 'SIGKILL');
  t.notOk(killIfSame(ref, 'SIGKILL'), 'nothing to signal once it is gone');
  t.equal(processRef(ref.pid)?.start === ref.start, false);
});
