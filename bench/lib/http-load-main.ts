/**
 * `node dist/bench/lib/http-load-main.js URL SECONDS CONCURRENCY CONNECTS`:
 * the load side of `npm run bench -- tproxy`, run inside a namespace host.
 * 1. CONCURRENCY callers on kept-alive connections GET URL for SECONDS: requests/s;
 * 2. CONNECTS requests one after the other, each on a new connection: the time
 *    from the connect call until the whole answer is in (connection setup plus
 *    one request; with capture that includes both Envoys' mTLS handshake).
 * Prints one JSON line: { rps, requests, errors, connectMs: number[] }.
 */
import http from 'node:http';

const [url, secondsText, concurrencyText, connectsText] = process.argv.slice(2);
const seconds = Number(secondsText);
const concurrency = Number(concurrencyText);
const connects = Number(connectsText);
if (url === undefined || !(seconds > 0) || !(concurrency > 0) || !(connects > 0)) {
  process.stderr.write('usage: http-load-main.js URL SECONDS CONCURRENCY CONNECTS\n');
  process.exit(2);
}

function get(agent: http.Agent | false): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url as string, { agent, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
for (let i = 0; i < concurrency; i++) await get(agent); // warm: open the connections
let requests = 0;
let errors = 0;
const started = performance.now();
const until = started + seconds * 1000;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      if (await get(agent)) requests++;
      else errors++;
    }
  }),
);
const rps = requests / ((performance.now() - started) / 1000);
agent.destroy();

const connectMs: number[] = [];
for (let i = 0; i < connects; i++) {
  const t0 = performance.now();
  if (await get(false)) connectMs.push(performance.now() - t0);
  else errors++;
}
process.stdout.write(`${JSON.stringify({ rps, requests, errors, connectMs })}\n`);
