/**
 * Part of `npm run build`, after tsc and copy-assets: the agent as one minified
 * ES module, dist/agent/mesh-agent.js (esbuild), which its `#!` line, the
 * package's /usr/bin/mesh-agent and startAgentProcess run.
 *
 * Why: every module the agent loads keeps its source text, its module record
 * and its scopes in the heap for the life of the process; from dist/ and
 * node_modules that was about 250 files and 4.7 MB of source text (zod alone
 * 1.4 MB in 85 files, with all its locales). One minified file of what the agent
 * reaches is 1.2 MB: bench/xds measured about 4.7 MB less RSS (alternating runs).
 *
 * What the agent finds next to its module at run time comes along into
 * dist/agent/: the host-facts worker (a bundle of its own), the Envoy protos'
 * descriptor and the wire contract's .proto. dist/agent/main.js stays and runs
 * the same program unbundled.
 *
 * zod is imported as a namespace (`import * as z from 'zod'`), never as its `z`
 * export: that object names all of zod (its JSON Schema code, its 45 locales),
 * so the bundle kept all of it. With the namespace, esbuild keeps what the
 * schemas call: 98 KB of zod instead of 458 KB, and about 0.7 MB less heap.
 */
import { cp, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { ENVOY_DESCRIPTOR_FILE } from '../lib/envoy/protos.js';
import { repoRoot } from './repo-root.js';

/** The bundle, relative to the repository (and to the package's app folder). */
export const AGENT_BUNDLE = path.join('dist', 'agent', 'mesh-agent.js');

/**
 * CommonJS dependencies call require() for node's modules; in an ES module
 * bundle that needs a real require (esbuild's stand-in throws).
 */
const REQUIRE_BANNER =
  "import { createRequire as __meshCreateRequire } from 'node:module';\nconst require = __meshCreateRequire(import.meta.url);";

export async function bundleAgent(root: string): Promise<string[]> {
  const dist = path.join(root, 'dist');
  const out = path.join(dist, 'agent');
  await build({
    entryPoints: {
      'mesh-agent': path.join(out, 'main.js'),
      // host-facts.ts starts it as ./host-facts-worker.js next to its own module.
      'host-facts-worker': path.join(out, 'run', 'host-facts-worker.js'),
    },
    outdir: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    banner: { js: REQUIRE_BANNER },
    logLevel: 'warning',
  });
  // protos.ts reads the descriptor, contract.ts the .proto, next to their module: now the bundle.
  await cp(path.join(dist, 'lib', 'envoy', ENVOY_DESCRIPTOR_FILE), path.join(out, ENVOY_DESCRIPTOR_FILE));
  await mkdir(path.join(out, 'mesh'), { recursive: true });
  await cp(path.join(dist, 'lib', 'proto', 'mesh'), path.join(out, 'mesh'), { recursive: true });
  return [AGENT_BUNDLE, path.join('dist', 'agent', 'host-facts-worker.js'), path.join('dist', 'agent', ENVOY_DESCRIPTOR_FILE)];
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  await bundleAgent(repoRoot());
}
