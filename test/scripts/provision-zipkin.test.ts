/**
 * Zipkin provisioning checks what it downloads: a jar whose SHA-256 is not the
 * pinned one, or whose SHA-1 is not the one the repository publishes, is
 * refused and leaves nothing in the cache; a good one is staged into place and
 * later runs use it without the network. A local HTTP server plays Maven
 * Central (same paths), so the test downloads nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { provisionZipkin, ZIPKIN_VERSION, zipkinJarPath, zipkinJarUrl } from '../../scripts/provision-zipkin.js';

const JAR = Buffer.from('not really a jar, but bytes to hash');
const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex');

async function fakeRepository(t: Test, sha1: string): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const jarPath = new URL(zipkinJarUrl(ZIPKIN_VERSION, 'http://x')).pathname;
    if (req.url === jarPath) res.end(JAR);
    else if (req.url === `${jarPath}.sha1`) res.end(`${sha1}\n`);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

t.test('Maven Central coordinates of the pinned version', async (t) => {
  t.equal(
    zipkinJarUrl(),
    `https://repo1.maven.org/maven2/io/zipkin/zipkin-server/${ZIPKIN_VERSION}/zipkin-server-${ZIPKIN_VERSION}-exec.jar`,
  );
});

t.test('a good jar is staged into place, then used offline', async (t) => {
  const cacheDir = t.testdir({});
  const repo = await fakeRepository(t, hex('sha1', JAR));
  const source = { repository: repo.url, sha256: hex('sha256', JAR) };
  const got = await provisionZipkin({ cacheDir, source });
  t.same(got, { path: zipkinJarPath(cacheDir), version: ZIPKIN_VERSION });
  t.same(readFileSync(got.path), JAR, 'the bytes served');
  t.same(
    readdirSync(cacheDir).filter((n) => n.includes('.tmp-')),
    [],
    'no staging folder left',
  );
  const before = repo.requests.length;
  const again = await provisionZipkin({ cacheDir, source: { repository: 'http://127.0.0.1:1', sha256: source.sha256 } });
  t.equal(again.path, got.path, 'the cached jar');
  t.equal(repo.requests.length, before, 'no request the second time');
});

t.test('a wrong SHA-256 or SHA-1 is refused and nothing stays in the cache', async (t) => {
  for (const [what, sha1, sha256] of [
    ['sha256', hex('sha1', JAR), '0'.repeat(64)],
    ['sha1', '0'.repeat(40), hex('sha256', JAR)],
  ] as const) {
    const cacheDir = t.testdir({});
    const repo = await fakeRepository(t, sha1);
    await t.rejects(provisionZipkin({ cacheDir, source: { repository: repo.url, sha256 } }), {
      code: 'MESH_E_PROVISION_FAILED',
      message: /does not match its checksums/,
    });
    t.notOk(existsSync(path.dirname(zipkinJarPath(cacheDir))), `${what}: no zipkin folder`);
    t.same(
      readdirSync(cacheDir).filter((n) => n.includes('zipkin')),
      [],
      `${what}: no staging folder left`,
    );
  }
});
