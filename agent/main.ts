#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=131072 node --max-semi-space-size=2 --optimize-for-size --jitless --no-expose-wasm --compact-on-every-full-gc
/**
 * mesh-agent: composition root only. Signal handling is installed before
 * anything else loads (early-signals.ts); the program is imported after it.
 */
import { holdSignals } from './run/early-signals.js';

holdSignals();
const { main } = await import('../lib/cli.js');
const { agentProgram } = await import('./program.js');
main(agentProgram());
