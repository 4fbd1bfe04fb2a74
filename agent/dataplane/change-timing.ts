/**
 * How long the latest catalog change took through the data plane, for
 * /status (`xds.lastChange`): from the new CatalogView's arrival to the
 * rebuild's start, the first push written to Envoy's stream, the snapshot
 * served (built, checked, encoded, handed to every stream) and Envoy's first
 * ACK after that push. With the catalog watch's own answer times (metrics)
 * it tells where the time from a Consul write to Envoy goes; the benchmark
 * (bench/xds.ts) prints it per change.
 *
 * Durations come from a monotonic millisecond source (performance.now() by
 * default); `at` is the clock's time of the arrival.
 */
import type { Clock } from '../../lib/clock.js';

export interface ChangeTiming {
  /** The CatalogView version that arrived. */
  readonly viewVersion: number;
  /** Clock time of its arrival (epoch ms). */
  readonly at: number;
  /** Arrival -> the rebuild started. */
  readonly startedMs?: number;
  /** Arrival -> the first response written to an Envoy stream (absent: nothing changed for Envoy). */
  readonly pushedMs?: number;
  /** Arrival -> the snapshot served (set in the cache, every stream told). */
  readonly servedMs?: number;
  /** Arrival -> Envoy's first ACK after the push. */
  readonly ackedMs?: number;
  /** The rebuild found nothing new for Envoy (the same snapshot version). */
  readonly unchanged?: true;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class ChangeTimer {
  private latest: Mutable<ChangeTiming> | undefined;
  private origin = 0;

  constructor(
    private readonly clock: Clock,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A new view arrived (a rebuild is queued). */
  viewArrived(version: number): void {
    this.origin = this.now();
    this.latest = { viewVersion: version, at: this.clock.now() };
  }

  buildStarted(): void {
    if (this.latest !== undefined && this.latest.startedMs === undefined) this.latest.startedMs = this.since();
  }

  /** A response went to an Envoy stream. */
  pushed(): void {
    if (this.latest?.startedMs !== undefined && this.latest.pushedMs === undefined) this.latest.pushedMs = this.since();
  }

  /** The rebuild ended: served (a new snapshot) or not (the same version; a refused one is no change either). */
  built(served: boolean): void {
    const l = this.latest;
    if (l?.startedMs === undefined || l.servedMs !== undefined || l.unchanged === true) return;
    if (served) l.servedMs = this.since();
    else l.unchanged = true;
  }

  /** Envoy acknowledged a response of this node. */
  acked(): void {
    if (this.latest?.pushedMs !== undefined && this.latest.ackedMs === undefined) this.latest.ackedMs = this.since();
  }

  status(): ChangeTiming | undefined {
    return this.latest === undefined ? undefined : { ...this.latest };
  }

  private since(): number {
    return Math.round((this.now() - this.origin) * 1000) / 1000;
  }
}
