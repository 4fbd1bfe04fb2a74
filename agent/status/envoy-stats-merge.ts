/**
 * Enriches Envoy's Prometheus text (admin /stats/prometheus) with the mesh
 * labels of envoy-labels.ts, so that one scrape of the agent's /metrics gives
 * Envoy's series labelled by source and destination service and SPIFFE IDs,
 * and `response_code` (a copy of Envoy's `envoy_response_code`). Pure: text
 * in, text out; comment lines (# TYPE, # HELP) and series with no known
 * scope pass through unchanged. A label the series already has is never
 * overwritten.
 */
import type { LabelIndex, MeshLabels } from './envoy-labels.js';

/** Label -> value of one series, in order. */
export type Labels = Array<[string, string]>;

export interface Sample {
  name: string;
  labels: Labels;
  /** The value and optional timestamp, as written. */
  rest: string;
}

/** Parses one sample line (`name{a="b",c="d"} value [timestamp]`); undefined for anything else. */
export function parseSample(line: string): Sample | undefined {
  const nameMatch = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (nameMatch === null) return undefined;
  const name = nameMatch[1] as string;
  let i = name.length;
  const labels: Labels = [];
  if (line[i] === '{') {
    i++;
    while (i < line.length && line[i] !== '}') {
      const key = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/.exec(line.slice(i));
      if (key === null) return undefined;
      i += key[0].length;
      let value = '';
      for (; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === '\\') {
          i++;
          const c = line[i];
          value += c === 'n' ? '\n' : (c ?? '');
        } else value += line[i];
      }
      if (line[i] !== '"') return undefined;
      i++;
      labels.push([key[1] as string, value]);
      const sep = /^\s*,?\s*/.exec(line.slice(i));
      i += sep?.[0].length ?? 0;
    }
    if (line[i] !== '}') return undefined;
    i++;
  }
  const rest = line.slice(i).trim();
  if (rest === '') return undefined;
  return { name, labels, rest };
}

const escapeValue = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export function formatSample(s: Sample): string {
  const labels = s.labels.length === 0 ? '' : `{${s.labels.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(',')}}`;
  return `${s.name}${labels} ${s.rest}`;
}

/** The mesh labels a series gets: from its cluster, else from its HCM/tcp_proxy prefix; plus response_code. */
export function meshLabelsOf(labels: Labels, index: LabelIndex): Labels {
  const get = (k: string) => labels.find(([key]) => key === k)?.[1];
  const cluster = get('envoy_cluster_name');
  const prefix = get('envoy_http_conn_manager_prefix') ?? get('envoy_tcp_prefix');
  const mesh: MeshLabels | undefined =
    (cluster === undefined ? undefined : index.clusters.get(cluster)) ?? (prefix === undefined ? undefined : index.prefixes.get(prefix));
  const out: Labels = Object.entries(mesh ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string');
  const code = get('envoy_response_code');
  if (code !== undefined) out.push(['response_code', code]);
  const have = new Set(labels.map(([k]) => k));
  return out.filter(([k]) => !have.has(k));
}

/** Envoy's Prometheus text with the mesh labels added to every series whose scope the agent knows. */
export function enrichEnvoyStats(text: string, index: LabelIndex): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      out.push(line);
      continue;
    }
    const sample = parseSample(line);
    if (sample === undefined) {
      out.push(line);
      continue;
    }
    const extra = meshLabelsOf(sample.labels, index);
    out.push(extra.length === 0 ? line : formatSample({ ...sample, labels: [...sample.labels, ...extra] }));
  }
  return out.join('\n');
}
