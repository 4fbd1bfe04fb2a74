/**
 * The agent under systemd (Type=notify): READY=1 once agentReadiness says so
 * (Envoy serving its first acknowledged snapshot), STATUS= lines while it
 * waits, RELOADING=1 / READY=1 around a SIGHUP reload (with the reload's
 * outcome), STOPPING=1 on a stop. Readiness is re-checked on every data-plane
 * event (Envoy events, ACKs, NACKs, rebuilds) and, as a safety net, every
 * second on the injected clock.
 */
import type { Clock } from '../../lib/clock.js';
import type { ServiceNotifier } from '../../lib/sd-notify.js';
import { agentReadiness } from '../status/readiness.js';
import type { Agent } from './agent.js';
import type { ConfigFileStatus } from './config-reload.js';

const RECHECK_MS = 1_000;

/**
 * Resolves once the agent is ready (then READY=1 has been sent), or when
 * `cancelled` settles first (a stop during start-up: nothing is sent).
 */
export async function announceReady(
  agent: Pick<Agent, 'status' | 'dataPlane'>,
  notifier: ServiceNotifier,
  clock: Clock,
  cancelled: Promise<unknown>,
): Promise<boolean> {
  let lastWaiting: string | undefined;
  const ready = await new Promise<boolean>((resolve) => {
    let done = false;
    let timer: { cancel(): void } | undefined;
    const finish = (value: boolean) => {
      if (done) return;
      done = true;
      off?.();
      timer?.cancel();
      resolve(value);
    };
    const check = () => {
      if (done) return;
      const r = agentReadiness(agent.status());
      if (r.ready) return finish(true);
      if (r.waitingFor !== lastWaiting) {
        lastWaiting = r.waitingFor;
        void notifier.status(`starting: waiting for ${r.waitingFor}`);
      }
      timer?.cancel();
      timer = clock.setTimer(RECHECK_MS, check);
    };
    const off = agent.dataPlane?.onEnvoyChange?.(check);
    void cancelled.then(() => finish(false));
    check();
  });
  if (ready) await notifier.ready(servingStatus(agent));
  return ready;
}

/** The STATUS= line of a serving agent. */
export function servingStatus(agent: Pick<Agent, 'status'>, config?: ConfigFileStatus): string {
  const doc = agent.status();
  const base = `serving ${doc.workloads.length} workload(s)${doc.healthy ? '' : `; ${doc.problems.length} problem(s): mesh-agent status`}`;
  if (config?.state === 'rejected') return `${base}; reload rejected: ${config.error?.code ?? ''} in ${config.file}`;
  return base;
}
