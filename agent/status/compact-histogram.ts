/**
 * A labelled histogram for prom-client's Registry that keeps each series as
 * one Float64Array (bucket counts, sum, count) instead of prom-client's
 * Histogram objects. The agent's per-service Consul watch histogram has a
 * series per service and outcome: with 200 upstreams prom-client's Histogram
 * held 2.8 MB of heap for it (about 5 KB per series), this about 0.2 MB.
 *
 * The exposition text is exactly prom-client's (the test compares both on
 * the same observations): the registry formats the values this returns, `le`
 * first, then the series' labels in the order the label names were given.
 */
import type { Registry } from 'prom-client';

/** One sample as prom-client's registry reads it. */
interface Sample {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  /** prom-client's samples carry one (null for buckets, undefined for sum and count; we keep none). */
  exemplar: null | undefined;
}

interface Exported {
  name: string;
  help: string;
  type: 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

export interface CompactHistogramOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds, ascending (prom-client's `buckets`). */
  buckets: readonly number[];
  registers: readonly Registry[];
}

interface Series<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  /** Per bucket (not cumulative), then sum, then count. */
  readonly values: Float64Array;
}

export class CompactHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly labelNames: readonly L[];
  private readonly bounds: readonly number[];
  private series = new Map<string, Series<L>>();

  constructor(options: CompactHistogramOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...options.labelNames];
    this.bounds = [...options.buckets];
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  observe(labels: Readonly<Record<L, string>>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    let s = this.series.get(key);
    if (s === undefined) {
      const own = {} as Record<L, string>;
      for (const n of this.labelNames) own[n] = labels[n];
      s = { labels: own, values: new Float64Array(this.bounds.length + 2) };
      this.series.set(key, s);
    }
    const b = this.bounds.findIndex((bound) => value <= bound);
    if (b !== -1) s.values[b] = (s.values[b] as number) + 1;
    s.values[this.bounds.length] = (s.values[this.bounds.length] as number) + value;
    s.values[this.bounds.length + 1] = (s.values[this.bounds.length + 1] as number) + 1;
  }

  reset(): void {
    this.series = new Map();
  }

  /** What Registry.metrics() formats: buckets with `le` as their own label, the series' labels shared. */
  async getForPromString(): Promise<Exported> {
    const values: Sample[] = [];
    const n = this.bounds.length;
    for (const { labels, values: v } of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        acc += v[i] as number;
        values.push({
          labels: { le: this.bounds[i] as number },
          sharedLabels: labels,
          value: acc,
          metricName: `${this.name}_bucket`,
          exemplar: null,
        });
      }
      const count = v[n + 1] as number;
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: count, metricName: `${this.name}_bucket`, exemplar: null });
      values.push({ labels: {}, sharedLabels: labels, value: v[n] as number, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: {}, sharedLabels: labels, value: count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The JSON form (Registry.getMetricsAsJSON): each value with all its labels. */
  async get(): Promise<Exported> {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })),
    };
  }
}
