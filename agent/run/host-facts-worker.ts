/** The host-facts child process (see host-facts.ts): runs systeminformation once, sends the result over IPC and exits. */
import { networkInterfaces } from 'node:os';
import si from 'systeminformation';
import { factsFrom, type HostFactsMessage } from './host-facts.js';

const answer = (message: HostFactsMessage) => process.send?.(message, () => process.disconnect());

try {
  const [osInfo, nets] = await Promise.all([si.osInfo(), si.networkInterfaces()]);
  const v6 = Object.entries(networkInterfaces()).map(([name, infos]) => [
    name,
    (infos ?? []).filter((i) => i.family === 'IPv6').map((i) => i.address),
  ]);
  const { hostname: _, ...facts } = factsFrom(osInfo, nets, '', Object.fromEntries(v6));
  answer({ facts });
} catch (err) {
  answer({ error: (err as Error).message });
}
