/**
 * `node dist/test/support/mesh-calls-main.js PORT N`: N requests to
 * 127.0.0.1:PORT (a caller's upstream port), printed as one JSON CallTally
 * line. Tests run it inside a network namespace (a host of test/support/netns.ts).
 */
import { tallyCalls } from './mesh-calls.js';

const [port, n] = process.argv.slice(2).map(Number);
if (port === undefined || n === undefined || !Number.isInteger(port) || !Number.isInteger(n)) {
  process.stderr.write('usage: mesh-calls-main.js PORT N\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await tallyCalls(port, n))}\n`);
