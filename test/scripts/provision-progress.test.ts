/**
 * Progress of a first provisioning (what `npm run demo` prints): the notice
 * comes once, before the first line, and never when nothing is provisioned;
 * a long step keeps saying it is still at work.
 */
import t from 'tap';
import { firstRunNotice, whileTicking } from '../../scripts/provision.js';

t.test('firstRunNotice: once, before the first line; silent when nothing is said', async (t) => {
  const lines: string[] = [];
  const progress = firstRunNotice((l) => lines.push(l), 'first run: this may take several minutes');
  t.same(lines, [], 'nothing before any progress (every tool cached)');
  progress('envoy: downloading');
  progress('consul: building');
  t.same(lines, ['first run: this may take several minutes', 'envoy: downloading', 'consul: building']);
});

t.test('whileTicking: "still ..." lines with the elapsed time while the work runs; its result comes back', async (t) => {
  const lines: string[] = [];
  let finish: (value: string) => void = () => {};
  const work = new Promise<string>((resolve) => {
    finish = resolve;
  });
  const result = whileTicking(
    (l) => {
      lines.push(l);
      if (lines.length === 2) finish('done');
    },
    'envoy: still downloading',
    () => work,
    5,
  );
  t.equal(await result, 'done');
  t.same(
    lines.slice(0, 2).map((l) => l.replace(/\(\d+ s\)/, '(N s)')),
    ['envoy: still downloading (N s)', 'envoy: still downloading (N s)'],
  );
});
