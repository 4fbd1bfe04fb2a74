/** The Envoy command line and version parsing: pure functions of the supervisor's settings. */
import t from 'tap';
import { drainSeconds, envoyArgs, parseEnvoyVersion, validateArgs } from '../../../agent/envoy/envoy-args.js';

t.test('the Envoy command line', async (t) => {
  const args = envoyArgs({
    workDir: '/var/lib/mesh/envoy',
    epoch: 3,
    baseId: 9,
    drainTimeMs: 1_500,
    parentShutdownMs: 2_000,
    concurrency: 2,
    logLevel: 'warning',
  });
  t.same(args, [
    '-c',
    '/var/lib/mesh/envoy/bootstrap-3.json',
    '--restart-epoch',
    '3',
    '--base-id',
    '9',
    '--admin-address-path',
    '/var/lib/mesh/envoy/admin-address-3',
    '--drain-time-s',
    '2',
    '--parent-shutdown-time-s',
    '3',
    '--concurrency',
    '2',
    '--log-level',
    'warning',
  ]);
  t.same(validateArgs('/x/bootstrap-4.json'), ['--mode', 'validate', '-c', '/x/bootstrap-4.json', '--log-level', 'error']);
});

t.test('drain and parent shutdown times are whole seconds, shutdown above drain', async (t) => {
  t.same(drainSeconds(10_000, 15_000), { drain: 10, parentShutdown: 15 });
  t.same(drainSeconds(10_000, 10_000), { drain: 10, parentShutdown: 11 }, 'parent shutdown time stays above the drain time');
  t.same(drainSeconds(0, 0), { drain: 1, parentShutdown: 2 });
});

t.test('the release from envoy --version', async (t) => {
  t.equal(parseEnvoyVersion('envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL'), '1.40.0');
  t.equal(parseEnvoyVersion('garbage'), undefined);
});
