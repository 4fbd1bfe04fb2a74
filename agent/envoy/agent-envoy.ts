/** This agent's Envoy: where its files live, its bootstrap and its hot-restart base id, from the agent config. */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { AgentConfig } from '../config/schema.js';
import { toModelTracing } from '../model/mesh-telemetry.js';
import type { ModelTracing } from '../model/proxy-model.js';
import { buildBootstrap } from './bootstrap.js';

/** The agent's Envoy folder: <dataDir>/envoy (bootstrap file, ADS socket). */
export function envoyDir(dataDir: string): string {
  return path.join(dataDir, 'envoy');
}

/** Where the agent serves ADS to Envoy: <dataDir>/envoy/ads.sock. */
export function adsSocketPath(dataDir: string): string {
  return path.join(envoyDir(dataDir), 'ads.sock');
}

/** The bootstrap of this agent's Envoy: node name, admin port, ADS socket and API from the config. */
export function agentBootstrap(config: AgentConfig, api: 'sotw' | 'delta' = config.envoy.api): Record<string, unknown> {
  return buildBootstrap({
    nodeName: config.nodeName,
    adminPort: config.envoy.adminPort,
    adsSocket: adsSocketPath(config.dataDir),
    api,
    accessLog: config.envoy.accessLog,
  });
}

/** Envoy's hot-restart base id: envoy.baseId, else derived from dataDir so two agents on one host never share one. */
export function envoyBaseId(config: AgentConfig): number {
  return config.envoy.baseId ?? 1 + (createHash('sha256').update(config.dataDir).digest().readUInt32BE(0) % 4_000_000);
}

/** The default JSON access log file (agent config accessLog.path unset): <dataDir>/envoy/access.log. */
export function inboundAccessLogPath(dataDir: string): string {
  return path.join(envoyDir(dataDir), 'access.log');
}

/** The access log file Envoy writes, or undefined when accessLog.output is stdout. */
export function accessLogFile(config: Pick<AgentConfig, 'accessLog' | 'dataDir'>): string | undefined {
  if (config.accessLog.output === 'stdout') return undefined;
  return config.accessLog.path ?? inboundAccessLogPath(config.dataDir);
}

/** Agent config `tracing` as the model wants it (the address split into host and port). */
export function modelTracing(tracing: AgentConfig['tracing']): ModelTracing | undefined {
  return tracing === undefined ? undefined : toModelTracing(tracing);
}
