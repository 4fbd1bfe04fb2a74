/**
 * nfpm's YAML for one package, one text for both formats (nfpm.yaml
 * reference: https://nfpm.goreleaser.com/configuration/). Pure: every file is
 * listed on its own, sorted, with its mode, owner root and the build's mtime,
 * so the packages depend only on the staged bytes and SOURCE_DATE_EPOCH, not on
 * the staging folder's own times or the umask.
 */
import { stringify } from 'yaml';
import { HOMEPAGE, LICENSE, MAINTAINER, type PackageSpec } from './package-spec.js';

export interface StagedEntry {
  /** Absolute path of the staged file; undefined for a folder. */
  readonly src?: string;
  /** Absolute path on the host. */
  readonly dst: string;
  readonly mode: number;
  /** config|noreplace: a config file (kept on upgrade, never replaced when edited); license: RPM's %license. */
  readonly type?: 'config|noreplace' | 'license';
  /** Only in this format's package. */
  readonly packager?: 'deb' | 'rpm';
}

export interface NfpmInput {
  readonly spec: PackageSpec;
  readonly version: string;
  /** SOURCE_DATE_EPOCH, seconds. */
  readonly mtime: number;
  readonly entries: readonly StagedEntry[];
  /** The maintainer scripts, absolute paths. */
  readonly scripts: { readonly preinstall: string; readonly postinstall: string; readonly preremove: string; readonly postremove: string };
}

function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

function content(entry: StagedEntry, mtime: string): Record<string, unknown> {
  const fileInfo = { mode: entry.mode, mtime, owner: 'root', group: 'root' };
  const only = entry.packager === undefined ? {} : { packager: entry.packager };
  if (entry.src === undefined) return { dst: entry.dst, type: 'dir', ...only, file_info: fileInfo };
  const base = { src: entry.src, dst: entry.dst };
  return entry.type !== undefined ? { ...base, type: entry.type, ...only, file_info: fileInfo } : { ...base, ...only, file_info: fileInfo };
}

/** The nfpm configuration as a plain object (tests read it; nfpmYaml prints it). */
export function nfpmConfig(input: NfpmInput): Record<string, unknown> {
  const mtime = isoTime(input.mtime);
  const entries = [...input.entries].sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  return {
    name: input.spec.name,
    arch: 'amd64',
    platform: 'linux',
    version: input.version,
    version_schema: 'none',
    section: 'net',
    priority: 'optional',
    maintainer: MAINTAINER,
    vendor: 'vm-mesh',
    homepage: HOMEPAGE,
    license: LICENSE,
    description: `${input.spec.summary}\n${input.spec.description}`,
    mtime,
    umask: 0o022,
    depends: [],
    contents: entries.map((e) => content(e, mtime)),
    scripts: { ...input.scripts },
    overrides: {
      deb: { depends: [...input.spec.depends.deb] },
      rpm: { depends: [...input.spec.depends.rpm] },
    },
    deb: { compression: 'gzip' },
    rpm: { compression: 'gzip', group: 'System Environment/Daemons', summary: input.spec.summary },
  };
}

export function nfpmYaml(input: NfpmInput): string {
  return stringify(nfpmConfig(input), { lineWidth: 0 });
}
