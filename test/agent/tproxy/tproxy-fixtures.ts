/** Configs and facts the transparent-proxy unit and golden tests share. */
import { type TransparentProxyConfig, transparentProxySchema } from '../../../agent/config/schema.js';
import type { CaptureFacts } from '../../../agent/tproxy/rules.js';

export function tpConfig(input: Record<string, unknown> = {}): TransparentProxyConfig {
  return transparentProxySchema().parse({ enabled: true, ...input });
}

/** A root agent, Envoy as mesh-envoy (uid/gid 995), two workload ports, control plane and Consul exempt. */
export const FACTS: CaptureFacts = {
  envoyUid: 995,
  envoyGid: 995,
  agentUid: 0,
  inboundPorts: [8080, 9090],
  excludeAddresses: ['10.0.0.5', 'fd00::5'],
  excludeUids: [],
  ipv6: true,
};
