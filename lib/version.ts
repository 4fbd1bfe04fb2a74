import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The package version, read from package.json next to dist/ or the sources. */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vm-mesh' && typeof pkg.version === 'string') {
        cached = pkg.version;
        return cached;
      }
    } catch {
      // try the next candidate
    }
  }
  cached = '0.0.0-unknown';
  return cached;
}
