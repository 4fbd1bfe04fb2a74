/**
 * Signal handling from the agent's first line of JavaScript, before the rest
 * of the program has even loaded: a SIGTERM or SIGINT that arrives while
 * `mesh-agent run` is still loading is held, and `run` acts on it as soon as
 * it installs its own handlers (it then stops before making anything). SIGHUP
 * is held too (ignored: the configuration is read fresh anyway). Other
 * commands keep the default behaviour. No imports: this module must load first.
 */
/** The signals that stop the agent (SIGHUP reloads); run-command.ts uses the same list. */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

let held: string | undefined;
let installed = false;
const onStop = (signal: string) => {
  held ??= signal;
};
const onHup = () => {};

/** Installs the holding handlers when the command line is `run`. */
export function holdSignals(argv: readonly string[] = process.argv.slice(2)): void {
  if (installed || !argv.includes('run')) return;
  installed = true;
  for (const signal of STOP_SIGNALS) process.on(signal, onStop);
  process.on('SIGHUP', onHup);
}

/** Removes the holding handlers (call after installing the real ones); returns a stop signal that arrived meanwhile. */
export function takeHeldSignal(): string | undefined {
  if (installed) {
    for (const signal of STOP_SIGNALS) process.off(signal, onStop);
    process.off('SIGHUP', onHup);
    installed = false;
  }
  const signal = held;
  held = undefined;
  return signal;
}
