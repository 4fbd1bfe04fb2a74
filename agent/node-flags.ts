/**
 * V8 flags the agent process runs with (the `#!` line of agent/main.ts and
 * every place that starts the agent with an explicit `node`). A young
 * generation of 2 MB instead of V8's default (up to 16 MB per semi-space)
 * keeps the agent's memory near what it really holds: xDS rebuilds churn
 * short-lived objects, and a large young generation turns that churn into
 * resident memory, and --optimize-for-size makes V8 grow its heap less
 * eagerly (bench/xds measures the agent's RSS: about 100 MB with 200
 * upstreams, against 190-215 MB with V8's defaults and fetch).
 * --max-opt=1: Sparkplug (the baseline compiler) is the highest tier, no
 * TurboFan: its compile zones, optimized code and the pages of node's binary it
 * runs from cost about 9 MB of RSS, and the agent's hot path (rebuild, encode,
 * push) measured no slower without it. Not --lite-mode/--jitless: they turn
 * WebAssembly off, and fetch (undici's llhttp is WebAssembly) fails with it.
 * --flush-baseline-code: Sparkplug's code of a function that has not run for a
 * while is dropped with its bytecode, as V8 already drops the bytecode of
 * functions that never got baseline code (start-up, config and command code
 * runs once): about 3.5 MB less RSS in bench/xds (alternating runs); a function
 * that runs again is compiled again, lazily.
 */
export const AGENT_NODE_FLAGS: readonly string[] = Object.freeze([
  '--max-semi-space-size=2',
  '--optimize-for-size',
  '--max-opt=1',
  '--flush-baseline-code',
]);

/**
 * Environment the agent process runs with (its `#!` line, the package's
 * wrapper, and every place that starts the agent with an explicit `node`).
 * MALLOC_ARENA_MAX=2: glibc gives each thread that allocates its own malloc
 * arena (up to 8 per core); V8's compiler and GC threads, libuv's pool and the
 * host-facts worker each kept freed memory in theirs. Two arenas cost nothing
 * measurable in bench/xds and left the agent about 4 MB smaller.
 */
export const AGENT_NODE_ENV: Readonly<Record<string, string>> = Object.freeze({ MALLOC_ARENA_MAX: '2' });

/** AGENT_NODE_ENV as `env` arguments: NAME=value ... */
export function agentEnvAssignments(): string[] {
  return Object.entries(AGENT_NODE_ENV).map(([name, value]) => `${name}=${value}`);
}
