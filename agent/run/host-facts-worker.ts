/** The host-facts worker thread (see host-facts.ts): runs systeminformation once and posts the result. */
import { networkInterfaces } from 'node:os';
import { parentPort } from 'node:worker_threads';
import si from 'systeminformation';
import { factsFrom } from './host-facts.js';

try {
  const [osInfo, nets] = await Promise.all([si.osInfo(), si.networkInterfaces()]);
  const v6 = Object.entries(networkInterfaces()).map(([name, infos]) => [
    name,
    (infos ?? []).filter((i) => i.family === 'IPv6').map((i) => i.address),
  ]);
  const { hostname: _, ...facts } = factsFrom(osInfo, nets, '', Object.fromEntries(v6));
  parentPort?.postMessage({ facts });
} catch (err) {
  parentPort?.postMessage({ error: (err as Error).message });
}
