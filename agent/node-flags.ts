/**
 * V8 flags the agent process runs with (the `#!` line of agent/main.ts and
 * every place that starts the agent with an explicit `node`). A young
 * generation of 2 MB instead of V8's default (up to 16 MB per semi-space)
 * keeps the agent's memory near what it really holds: xDS rebuilds churn
 * short-lived objects, and a large young generation turns that churn into
 * resident memory, and --optimize-for-size makes V8 grow its heap less
 * eagerly (bench/xds measures the agent's RSS: about 100 MB with 200
 * upstreams, against 190-215 MB with V8's defaults and fetch).
 * --jitless: V8 allocates no executable memory at run time. JavaScript runs in
 * its interpreter only (no Sparkplug or TurboFan code, no compile zones, no
 * code space), regular expressions in their interpreter too. In vs-consul,
 * alternating runs (bench/README.md): about 4 MB less RSS than with the former
 * --max-opt=1 --flush-baseline-code (Sparkplug as the top tier), 77.8 against
 * 81.6 MB, with "Consul write -> pushed to Envoy" the same within the Consul
 * server's noise. It also leaves no writable-and-executable memory in a process
 * that holds keys. Node then has no WebAssembly, so nothing the agent runs may
 * need it: fetch (undici's parser) is not used (lib/http-request.ts instead),
 * and protobufjs's int64 helper (long) falls back to plain JavaScript.
 * --no-expose-wasm says so explicitly: without it V8 prints "disabling flag
 * --expose_wasm due to conflicting flags" on every start.
 * --compact-on-every-full-gc: every full GC also compacts the old generation,
 * so the pages that garbage left half empty are given back. Each health flip
 * promotes short-lived objects (the rebuilt snapshot's parts, the next blocking
 * query) that die in the old generation; without compaction the agent's RSS
 * swung between about 72 and 79 MB over the GC cycle. In vs-consul, alternating
 * runs (bench/README.md): 69.6 and 69.4 MB against 72.1 and 72.3 MB without.
 * The cost is in the full GCs' pauses: 33-37 ms at the longest against 13-15 ms
 * (about 16 full GCs in a run, 322-393 ms of pauses against 91-98 ms); a change
 * that meets one reaches Envoy that much later. The applied p99 of those runs
 * stayed within the Consul server's noise (34.7 and 35.0 against 24.7 and
 * 32.9 ms), and without it the agent does not stay under 70 MB.
 */
export const AGENT_NODE_FLAGS: readonly string[] = Object.freeze([
  '--max-semi-space-size=2',
  '--optimize-for-size',
  '--jitless',
  '--no-expose-wasm',
  '--compact-on-every-full-gc',
]);

/**
 * Environment the agent process runs with (its `#!` line, the package's
 * wrapper, and every place that starts the agent with an explicit `node`).
 * MALLOC_ARENA_MAX=2: glibc gives each thread that allocates its own malloc
 * arena (up to 8 per core); V8's compiler and GC threads, libuv's pool and the
 * host-facts worker thread (a child process since) each kept freed memory in theirs. Two arenas cost nothing
 * measurable in bench/xds and left the agent about 4 MB smaller.
 * MALLOC_MMAP_THRESHOLD_=65536, MALLOC_TRIM_THRESHOLD_=131072: an allocation of
 * 64 KB or more (the 64 KB buffer node takes for a socket read, big Buffers) gets
 * pages of its own, given back when it is freed, and the heap's free top is
 * trimmed past 128 KB. By default glibc raises its mmap threshold after the
 * first such free, and the 64 KB buffers then came from the heap and left it
 * fragmented. In vs-consul quick runs: 68.8 and 69.4 MB against 70.0-71.6 MB
 * without (4 runs, same build, median of the last 25 s).
 */
export const AGENT_NODE_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '65536',
  MALLOC_TRIM_THRESHOLD_: '131072',
});

/** AGENT_NODE_ENV as `env` arguments: NAME=value ... */
export function agentEnvAssignments(): string[] {
  return Object.entries(AGENT_NODE_ENV).map(([name, value]) => `${name}=${value}`);
}
