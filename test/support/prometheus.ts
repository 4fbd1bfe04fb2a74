/**
 * A real Prometheus (the provisioned Debian 2.42, test/support/tools.ts) for
 * the metrics tests: scrapes the given targets every second, answers PromQL
 * through its HTTP query API; and promtool's `check metrics` of a scrape.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../lib/exec.js';
import { type ManagedChild, startChild } from './child.js';
import { freePorts } from './ports.js';
import { prometheusTools } from './tools.js';
import { httpGet, waitFor } from './wait.js';

export interface PromSeries {
  metric: Record<string, string>;
  value: [number, string];
}

export interface TestPrometheus {
  readonly url: string;
  readonly child: ManagedChild;
  /** An instant query; throws on a PromQL error (with Prometheus's message). */
  query(expr: string): Promise<PromSeries[]>;
  stop(): Promise<void>;
}

export interface ScrapeTarget {
  job: string;
  /** host:port */
  address: string;
  metricsPath?: string;
}

/** The prometheus.yml of the test: every target scraped each second. */
export function prometheusConfig(targets: readonly ScrapeTarget[]): string {
  const jobs = targets.map((t) =>
    [
      `  - job_name: ${t.job}`,
      `    metrics_path: ${t.metricsPath ?? '/metrics'}`,
      '    static_configs:',
      `      - targets: ['${t.address}']`,
    ].join('\n'),
  );
  return ['global:', '  scrape_interval: 1s', '  evaluation_interval: 1s', 'scrape_configs:', ...jobs, ''].join('\n');
}

export async function startPrometheus(targets: readonly ScrapeTarget[]): Promise<TestPrometheus> {
  const { prometheus } = await prometheusTools();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-prom-'));
  const config = path.join(dir, 'prometheus.yml');
  await writeFile(config, prometheusConfig(targets));
  const [port] = (await freePorts(1)) as [number];
  const url = `http://127.0.0.1:${port}`;
  const child = startChild(prometheus.path, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  const stop = async () => {
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => ((await httpGet(`${url}/-/ready`)).status === 200 ? true : undefined), {
      timeoutMs: 60_000,
      what: 'Prometheus ready',
      fatal: () => (child.exited() ? `prometheus exited: ${child.output().slice(-2000)}` : undefined),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    child,
    async query(expr) {
      const { status, body } = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const answer = JSON.parse(body) as { status: string; error?: string; data?: { resultType: string; result: PromSeries[] } };
      if (status !== 200 || answer.status !== 'success') throw new Error(`PromQL ${expr}: HTTP ${status}: ${answer.error ?? body}`);
      return answer.data?.result ?? [];
    },
    stop,
  };
}

/** `promtool check metrics` of an exposition text: exit 0 clean, 1 a parse error, 3 lint findings only. */
export async function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  const { promtool } = await prometheusTools();
  const result = await run(promtool.path, ['check', 'metrics'], { input: text, timeoutMs: 60_000 });
  return { code: result.code, output: `${result.stdout}${result.stderr}` };
}

/** The value of one series (`name{labels}` exactly as written) in exposition text; undefined when absent. */
export function sampleValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
