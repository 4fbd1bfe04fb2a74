/** Host facts from systeminformation: hostname, OS and the address other hosts reach this one at. */
import si from 'systeminformation';

export interface HostFacts {
  hostname: string;
  os: string;
  /** First non-internal IPv4 address; 127.0.0.1 when there is none. */
  address: string;
}

export async function hostFacts(): Promise<HostFacts> {
  const [os, nets] = await Promise.all([si.osInfo(), si.networkInterfaces()]);
  const list = Array.isArray(nets) ? nets : [nets];
  const external = list.find((n) => !n.internal && n.ip4 !== '' && n.operstate !== 'down');
  return { hostname: os.hostname, os: `${os.distro} ${os.release}`.trim() || os.platform, address: external?.ip4 ?? '127.0.0.1' };
}
