/**
 * `node dist/test/support/echo-app-main.js NAME PORT`: the echo app of
 * mesh-apps.ts as its own process on 127.0.0.1:PORT (answers with NAME and
 * the x-forwarded-client-cert it got), for hosts in network namespaces.
 * Prints `listening NAME PORT` once it accepts; stops on SIGTERM.
 */
import { startEchoApp } from './mesh-apps.js';

const [name, portText] = process.argv.slice(2);
const port = Number(portText);
if (name === undefined || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: echo-app-main.js NAME PORT\n');
  process.exit(2);
}
const app = await startEchoApp(name, port);
process.stdout.write(`listening ${name} ${app.port}\n`);
process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
