/** `mesh-controlplane run`: flags over an optional config file; runs until SIGTERM/SIGINT. */
import { type Command, EXIT_OK } from '../../lib/cli.js';
import { systemClock } from '../../lib/clock.js';
import { readConfigData, validateConfig } from '../../lib/config-file.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { type ServiceNotifier, serviceNotifier } from '../../lib/sd-notify.js';
import { controlplaneSchema } from '../config/schema.js';
import { startControlPlane } from '../control-plane.js';

export interface RunDeps {
  /** Where SIGTERM and SIGINT come from; tests pass an EventEmitter. */
  signals?: {
    once(event: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
    off?(event: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  };
  /** systemd notifications (READY=1 once listening); default: systemd-notify when $NOTIFY_SOCKET is set. */
  notifier?: (log: Logger) => ServiceNotifier;
}

export function runCommand(deps: RunDeps = {}): Command {
  return {
    name: 'run',
    summary: 'run the control plane: CA, join tokens, SVID signing, admin socket',
    usage: `[--config FILE] [--data-dir DIR] [--listen HOST:PORT] [--trust-domain TD]

Options:
  --config FILE          YAML or JSON: dataDir, listen, trustDomain, svidTtl (24h), nodeSvidTtl (24h),
                         maxTokenTtl (24h), maxCsrBytes (4096), signingWorkers (one per core, at most 4),
                         rateLimit {perSecond, burst}, log {level, format}
  --data-dir DIR         state: SQLite database, CA keys (DIR/ca, 0600 in 0700), admin.sock
  --listen HOST:PORT     the Identity API (TLS); default 0.0.0.0:8443
  --trust-domain TD      the SPIFFE trust domain, e.g. example.org
Flags override the file. On first start the CA (root + signing CA, ECDSA P-256) is created in DIR.
`,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'trust-domain': { type: 'string' },
    },
    async run({ values, io }) {
      const file = typeof values.config === 'string' ? values.config : undefined;
      // The file is read as data and validated once, after the flags are merged in.
      const base = file ? await readConfigData(file) : {};
      const merged = {
        ...base,
        ...(typeof values['data-dir'] === 'string' ? { dataDir: values['data-dir'] } : {}),
        ...(typeof values.listen === 'string' ? { listen: values.listen } : {}),
        ...(typeof values['trust-domain'] === 'string' ? { trustDomain: values['trust-domain'] } : {}),
      };
      const config = validateConfig(controlplaneSchema, merged, file ?? 'command line');
      const logger = createLogger({
        level: config.log.level,
        format: config.log.format,
        sink: { write: (l) => io.stderr.write(`${l}\n`) },
      });
      const cp = await startControlPlane(config, { clock: systemClock, logger });
      const started = {
        listen: cp.address,
        adminSocket: cp.adminSocket,
        trustDomain: config.trustDomain,
        ...(cp.metricsAddress === undefined ? {} : { metrics: cp.metricsAddress }),
      };
      io.stdout.write(`${JSON.stringify(started)}\n`);
      // The Identity API listens and the admin socket exists: `systemctl start` returns now.
      const notifier = (deps.notifier ?? ((l) => serviceNotifier({ notifySocket: process.env.NOTIFY_SOCKET, log: l })))(logger);
      await notifier.ready(`listening on ${cp.address}, trust domain ${config.trustDomain}`);
      const signals = deps.signals ?? process;
      await new Promise<void>((resolve) => {
        // Whichever signal comes first, remove both listeners: a SIGINT listener left behind
        // would swallow a later Ctrl-C (and pile up when run is called again in-process).
        const stop = () => {
          signals.off?.('SIGTERM', stop);
          signals.off?.('SIGINT', stop);
          resolve();
        };
        signals.once('SIGTERM', stop);
        signals.once('SIGINT', stop);
      });
      logger.info('stopping');
      void notifier.stopping('stopping');
      await cp.stop();
      return EXIT_OK;
    },
  };
}
