/**
 * What each package is, as data: its name, the programs it wraps into /usr/bin,
 * the parts of the compiled app it carries, its config files, units and
 * dependencies. Pure: the build (build.ts) stages files from it and nfpm-config.ts
 * turns it into nfpm's YAML.
 *
 * Layout of a package (everything of the program under /usr/lib/<name>/):
 *   /usr/lib/<name>/node/bin/node       the pinned Node.js runtime (stripped)
 *   /usr/lib/<name>/node/LICENSE
 *   /usr/lib/<name>/app/package.json     name and version (lib/version.ts reads it)
 *   /usr/lib/<name>/app/dist/...         the compiled app: lib/ and the program's own folder
 *   /usr/lib/<name>/app/node_modules/... production dependencies, native addon built for Node 20
 *   /usr/lib/mesh-agent/envoy/envoy      (agent) the Envoy binary, and envoy/LICENSE
 *   /usr/bin/<program>                   a shell wrapper that execs the bundled node
 *   /etc/<name>/...                      config files, kept on upgrade
 *   /lib/systemd/system/<name>.service   the unit (systemd/)
 */

import { AGENT_NODE_ENV, AGENT_NODE_FLAGS } from '../../agent/node-flags.js';

export type PackageName = 'mesh-agent' | 'mesh-controlplane';

export interface Program {
  /** The command in /usr/bin. */
  readonly command: string;
  /** Its entry point, relative to the app folder. */
  readonly main: string;
  /**
   * Node.js options the wrapper passes (the #! line of the entry point is blanked in
   * the package, so the flags it carries must be repeated here).
   */
  readonly nodeFlags?: readonly string[];
  /** Environment variables the wrapper sets for it (an operator's own value wins). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface ConfigFile {
  /** In the repository. */
  readonly source: string;
  /** On the host. */
  readonly destination: string;
}

export interface SystemUser {
  readonly name: string;
  readonly home: string;
  readonly comment: string;
}

export interface PackageSpec {
  readonly name: PackageName;
  readonly summary: string;
  readonly description: string;
  readonly programs: readonly Program[];
  /** The folders of dist/ the app needs (each with all its files but tests). */
  readonly distDirs: readonly string[];
  readonly configFiles: readonly ConfigFile[];
  /** Empty folders the package owns (config folders the operator fills). */
  readonly configDirs: readonly string[];
  /** The unit files in the repository, installed into /lib/systemd/system/. */
  readonly units: readonly string[];
  readonly users: readonly SystemUser[];
  /** Bundles the provisioned Envoy into /usr/lib/<name>/envoy/. */
  readonly bundlesEnvoy: boolean;
  /** Production packages its programs never load (with what only they need), left out of it. */
  readonly leaveOut: readonly string[];
  /** Runtime dependencies, Debian's names and RPM's. */
  readonly depends: { readonly deb: readonly string[]; readonly rpm: readonly string[] };
}

export const MAINTAINER = 'vm-mesh maintainers <vm-mesh@example.org>';
export const HOMEPAGE = 'https://example.org/vm-mesh';
/** The project has published no license yet (package.json has none): say so rather than guess. */
export const LICENSE = 'NOASSERTION';

/** The node binary and the better-sqlite3 addon need glibc 2.34+ and the C++ runtime (libstdc++, libgcc_s). */
const RUNTIME_DEPS = {
  deb: ['libc6 (>= 2.34)', 'libstdc++6', 'libgcc-s1'],
  // RPM names libraries by soname, as its own dependency generator would.
  rpm: ['libc.so.6(GLIBC_2.34)(64bit)', 'libstdc++.so.6()(64bit)', 'libgcc_s.so.1()(64bit)'],
};

export const PACKAGES: Readonly<Record<PackageName, PackageSpec>> = Object.freeze({
  'mesh-agent': {
    name: 'mesh-agent',
    summary: 'Service mesh node agent for VMs and bare metal',
    description:
      'mesh-agent joins a host to the mesh, registers its workloads in Consul,\n' +
      'obtains their SPIFFE identities, runs the bundled Envoy and installs the\n' +
      'transparent proxy.\n' +
      'It bundles its own Node.js runtime and Envoy under /usr/lib/mesh-agent.',
    // dist/agent/mesh-agent.js: the agent as one bundle (scripts/bundle-agent.ts).
    programs: [{ command: 'mesh-agent', main: 'dist/agent/mesh-agent.js', nodeFlags: AGENT_NODE_FLAGS, env: AGENT_NODE_ENV }],
    distDirs: ['lib', 'agent'],
    configFiles: [{ source: 'packaging/config/agent.yaml', destination: '/etc/mesh-agent/agent.yaml' }],
    configDirs: ['/etc/mesh-agent/workloads.d'],
    units: ['systemd/mesh-agent.service'],
    users: [
      { name: 'mesh-agent', home: '/var/lib/mesh-agent', comment: 'mesh-agent' },
      { name: 'mesh-envoy', home: '/nonexistent', comment: 'mesh-agent Envoy proxy' },
    ],
    bundlesEnvoy: true,
    // Only the control plane talks to Kubernetes (54 MB on disk).
    leaveOut: ['@kubernetes/client-node'],
    depends: { deb: [...RUNTIME_DEPS.deb, 'iptables'], rpm: [...RUNTIME_DEPS.rpm, 'iptables'] },
  },
  'mesh-controlplane': {
    name: 'mesh-controlplane',
    summary: 'Service mesh control plane and certificate authority',
    description:
      'mesh-controlplane is the mesh certificate authority for SPIFFE\n' +
      'X.509-SVIDs, the join-token and node-identity service and the policy\n' +
      'source; meshctl drives it. It bundles its own Node.js runtime under\n' +
      '/usr/lib/mesh-controlplane.',
    programs: [
      { command: 'mesh-controlplane', main: 'dist/controlplane/main.js' },
      { command: 'meshctl', main: 'dist/controlplane/cli/main.js' },
    ],
    // agent/discovery: the Consul client the Kubernetes catalog sync shares with the agent.
    distDirs: ['lib', 'controlplane', 'agent/discovery'],
    configFiles: [{ source: 'packaging/config/controlplane.yaml', destination: '/etc/mesh-controlplane/controlplane.yaml' }],
    configDirs: [],
    units: ['systemd/mesh-controlplane.service'],
    users: [{ name: 'mesh-controlplane', home: '/var/lib/mesh-controlplane', comment: 'mesh-controlplane' }],
    bundlesEnvoy: false,
    leaveOut: [],
    depends: RUNTIME_DEPS,
  },
});

export const PACKAGE_NAMES: readonly PackageName[] = Object.freeze(['mesh-agent', 'mesh-controlplane']);

export function libDir(name: PackageName): string {
  return `/usr/lib/${name}`;
}

/** The text of /usr/bin/<command>: runs the program with the package's own node. */
export function wrapperText(pkg: PackageName, program: Program): string {
  const lib = libDir(pkg);
  return [
    '#!/bin/sh',
    `# ${program.command}, from the ${pkg} package: runs it with the Node.js runtime bundled in ${lib}.`,
    ...Object.entries(program.env ?? {}).map(([name, value]) => `export ${name}="\${${name}:-${value}}"`),
    `exec ${[`${lib}/node/bin/node`, ...(program.nodeFlags ?? []), `${lib}/app/${program.main}`].join(' ')} "$@"`,
    '',
  ].join('\n');
}

export type PackageFormat = 'deb' | 'rpm';

/** dist/packages/ file names: Debian's <name>_<version>_amd64.deb, RPM's <name>-<version>.x86_64.rpm. */
export function packageFileName(name: PackageName, version: string, format: PackageFormat): string {
  return format === 'deb' ? `${name}_${version}_amd64.deb` : `${name}-${version}.x86_64.rpm`;
}

/** A version both formats accept: digits and dots, optionally a ~/+ suffix of letters, digits and dots. */
export function checkVersion(version: string): string | undefined {
  return /^\d+(\.\d+){0,3}([~+][0-9A-Za-z.]+)?$/.test(version)
    ? undefined
    : `must be digits and dots (e.g. 0.1.1), optionally followed by ~ or + and letters, digits or dots`;
}
