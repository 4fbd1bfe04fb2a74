/** bench/lib/vs-consul-peers.ts onFreshPorts: a Consul start that lost a port race is tried again on new ports; nothing else is. */
import t from 'tap';
import { onFreshPorts } from '../../bench/lib/vs-consul-peers.js';

t.test('a start that failed on a taken port runs again, and its result comes back', async (t) => {
  const lines: string[] = [];
  let calls = 0;
  const result = await onFreshPorts(
    'the Consul server',
    async () => {
      calls++;
      if (calls < 3) throw new Error('consul dev agent did not become ready: ... listen tcp 127.0.0.1:41234: bind: address already in use');
      return 'started';
    },
    { log: (line) => lines.push(line) },
  );
  t.equal(result, 'started');
  t.equal(calls, 3);
  t.strictSame(lines, [
    'vs-consul: the Consul server: a port was taken before Consul bound it; starting again on new ports (attempt 2 of 3)',
    'vs-consul: the Consul server: a port was taken before Consul bound it; starting again on new ports (attempt 3 of 3)',
  ]);
});

/** A start that always fails with message(call number), counting its calls. */
function failing(message: (call: number) => string): { start: () => Promise<never>; calls: () => number } {
  let calls = 0;
  return {
    start: async () => {
      calls++;
      throw new Error(message(calls));
    },
    calls: () => calls,
  };
}

t.test('after the last attempt, the port failure itself is thrown', async (t) => {
  const s = failing((n) => `bind: address already in use (${n})`);
  await t.rejects(onFreshPorts('the Consul client agent', s.start, { attempts: 2, log: () => {} }), {
    message: 'bind: address already in use (2)',
  });
  t.equal(s.calls(), 2);
});

t.test('any other failure is thrown at once', async (t) => {
  const s = failing(() => 'consul exited: bad config');
  await t.rejects(onFreshPorts('the Consul server', s.start, { log: () => t.fail('no retry line') }), {
    message: 'consul exited: bad config',
  });
  t.equal(s.calls(), 1);
});
