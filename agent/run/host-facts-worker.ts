/** The host-facts worker thread (see host-facts.ts): runs systeminformation once and posts the result. */
import { parentPort } from 'node:worker_threads';
import si from 'systeminformation';
import { factsFrom } from './host-facts.js';

try {
  const [osInfo, nets] = await Promise.all([si.osInfo(), si.networkInterfaces()]);
  const { hostname: _, ...facts } = factsFrom(osInfo, nets, '');
  parentPort?.postMessage({ facts });
} catch (err) {
  parentPort?.postMessage({ error: (err as Error).message });
}
