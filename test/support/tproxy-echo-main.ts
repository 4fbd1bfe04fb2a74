/**
 * `node dist/test/support/tproxy-echo-main.js NAME PORT`: an HTTP echo app for
 * the transparent-proxy tests, bound on every address (:: dual-stack, so
 * 0.0.0.0 too: what capture must protect). It answers with NAME, the
 * x-forwarded-client-cert it got and the peer address, and prints one JSON
 * line per request (`{"request":{...}}`) so a test can tell whether the app
 * ever saw a request without XFCC. Prints `listening NAME PORT` once it
 * accepts; stops on SIGTERM.
 */
import http from 'node:http';

const [name, portText] = process.argv.slice(2);
const port = Number(portText);
if (name === undefined || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: tproxy-echo-main.js NAME PORT\n');
  process.exit(2);
}
const server = http.createServer((req, res) => {
  const answer = {
    app: name,
    xfcc: String(req.headers['x-forwarded-client-cert'] ?? ''),
    path: req.url ?? '',
    from: req.socket.remoteAddress ?? '',
  };
  process.stdout.write(`${JSON.stringify({ request: answer })}\n`);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(answer));
});
server.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write(`listening ${name} ${port}\n`));
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
