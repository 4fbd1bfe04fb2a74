/**
 * Provisions Zipkin, the trace collector the tracing tests send Envoy's spans
 * to, into the same cache and under the same lock as Envoy and Consul
 * (provision.ts, provision-lock.ts): Maven Central's
 * `io.zipkin:zipkin-server:<ZIPKIN_VERSION>:jar:exec` (about 135 MB, a
 * self-contained jar run with `java -jar`; the machine's Java 17 runs it).
 *
 * Integrity: the download is hashed while it streams; its SHA-256 must equal
 * the pin below and its SHA-1 the one Maven Central publishes next to it
 * (`.sha1`). It is written into a staging folder and renamed into place only
 * when complete and checked, so an existing `zipkin-<version>/` folder is a
 * verified one and later runs use it offline.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { MeshError } from '../lib/errors.js';
import { stageInto, type ToolInfo, underProvisionLock } from './provision.js';

export const ZIPKIN_VERSION = '3.6.1';
/** SHA-256 of zipkin-server-3.6.1-exec.jar, as Maven Central publishes it (`.sha256`). */
export const ZIPKIN_SHA256 = 'd8326e0ed4f43855dba81228f688554706e52578a7c782d9a90b73f8680654a1';
const MAVEN_CENTRAL = 'https://repo1.maven.org/maven2';

export function zipkinJarUrl(version: string = ZIPKIN_VERSION, repository: string = MAVEN_CENTRAL): string {
  return `${repository}/io/zipkin/zipkin-server/${version}/zipkin-server-${version}-exec.jar`;
}

/** Where the jar comes from and what it must hash to; tests point them at a local server. */
export interface ZipkinSource {
  readonly repository: string;
  readonly sha256: string;
}

const MAVEN_CENTRAL_SOURCE: ZipkinSource = { repository: MAVEN_CENTRAL, sha256: ZIPKIN_SHA256 };

export function zipkinJarPath(cacheDir: string, version: string = ZIPKIN_VERSION): string {
  return path.join(cacheDir, `zipkin-${version}`, `zipkin-server-${version}-exec.jar`);
}

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new MeshError('MESH_E_PROVISION_FAILED', `GET ${url}: HTTP ${res.status}`);
  return (await res.text()).trim();
}

/** Downloads url into file, returning its SHA-1 and SHA-256 (hex). */
async function download(url: string, file: string): Promise<{ sha1: string; sha256: string; bytes: number }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(15 * 60_000) });
  if (!res.ok || res.body === null) throw new MeshError('MESH_E_PROVISION_FAILED', `GET ${url}: HTTP ${res.status}`);
  const sha1 = createHash('sha1');
  const sha256 = createHash('sha256');
  let bytes = 0;
  const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => {
    sha1.update(chunk);
    sha256.update(chunk);
    bytes += chunk.length;
  });
  await pipeline(body, createWriteStream(file, { mode: 0o644 }));
  return { sha1: sha1.digest('hex'), sha256: sha256.digest('hex'), bytes };
}

/** The cached Zipkin exec jar; downloaded and checked on first use. */
export async function provisionZipkinJar(
  cacheDir: string,
  progress: (line: string) => void,
  source: ZipkinSource = MAVEN_CENTRAL_SOURCE,
): Promise<ToolInfo> {
  const jar = zipkinJarPath(cacheDir);
  if (existsSync(jar)) return { path: jar, version: ZIPKIN_VERSION };
  const url = zipkinJarUrl(ZIPKIN_VERSION, source.repository);
  progress(`zipkin: downloading ${url} (about 135 MB)`);
  const started = Date.now();
  await stageInto(path.dirname(jar), async (staging) => {
    await mkdir(staging, { recursive: true });
    const got = await download(url, path.join(staging, path.basename(jar)));
    const published = (await fetchText(`${url}.sha1`)).split(/\s+/)[0];
    if (got.sha256 !== source.sha256 || got.sha1 !== published)
      throw new MeshError(
        'MESH_E_PROVISION_FAILED',
        `zipkin: ${url} does not match its checksums (sha256 ${got.sha256}, expected ${source.sha256}; sha1 ${got.sha1}, the repository says ${published})`,
      );
    progress(`zipkin: ${got.bytes} bytes in ${Math.round((Date.now() - started) / 1000)} s, sha1 and sha256 match`);
  });
  return { path: jar, version: ZIPKIN_VERSION };
}

/** provisionZipkinJar under the cache's provisioning lock. */
export function provisionZipkin(options: {
  cacheDir: string;
  progress?: (line: string) => void;
  source?: ZipkinSource;
}): Promise<ToolInfo> {
  return underProvisionLock(options, (progress) => provisionZipkinJar(options.cacheDir, progress, options.source));
}
