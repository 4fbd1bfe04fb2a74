/**
 * Workload files as an operator writes them into workloads.d (YAML), for the
 * tests that run an agent: one workload, or the pair every data-plane test
 * runs, web calling api through a local port.
 */

export interface WorkloadFile {
  name: string;
  /** The app's port on loopback. */
  port: number;
  meshPort: number;
  /** An HTTP check of the app's /health every second (Consul runs it). */
  check?: boolean;
  upstreams?: ReadonlyArray<{ service: string; localPort: number }>;
}

/** The YAML of one workload (protocol http). */
export function workloadYaml(w: WorkloadFile): string {
  const lines = [`name: ${w.name}`, `port: ${w.port}`, `meshPort: ${w.meshPort}`, 'protocol: http'];
  if (w.check === true) lines.push(`check: { http: "http://127.0.0.1:${w.port}/health", interval: 1s }`);
  if (w.upstreams !== undefined && w.upstreams.length > 0) {
    lines.push(`upstreams: [${w.upstreams.map((u) => `{ service: ${u.service}, localPort: ${u.localPort} }`).join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}

export interface WebApiFilePorts {
  /** The apps' ports. */
  web: number;
  api: number;
  webMesh: number;
  apiMesh: number;
  /** web's local port for its upstream api. */
  apiLocal: number;
}

/** web.yaml (web calls api at apiLocal) and api.yaml, by file name. */
export function webApiFiles(ports: WebApiFilePorts, options: { check?: boolean } = {}): Record<string, string> {
  const check = options.check === true;
  return {
    'web.yaml': workloadYaml({
      name: 'web',
      port: ports.web,
      meshPort: ports.webMesh,
      check,
      upstreams: [{ service: 'api', localPort: ports.apiLocal }],
    }),
    'api.yaml': workloadYaml({ name: 'api', port: ports.api, meshPort: ports.apiMesh, check }),
  };
}
