/** The pure parts of the Debian rootfs provisioning: the mirror from apt's sources, the cache key, the mounts to undo. */
import t from 'tap';
import { mountsUnder } from '../../scripts/mounts.js';
import { debianMirrorOf, rootfsFileName } from '../../scripts/provision-rootfs.js';

t.test('the mirror is the one apt uses for the suite itself (deb822 and one-line sources)', async (t) => {
  const deb822 = `Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
`;
  t.equal(debianMirrorOf([deb822], 'bookworm'), 'http://mirror.example/debian');
  const oneLine = 'deb https://other.example/apt nodistro main\ndeb [arch=amd64] http://old.example/debian bookworm main\n';
  t.equal(debianMirrorOf([oneLine], 'bookworm'), 'http://old.example/debian', 'options in brackets are skipped');
  t.equal(
    debianMirrorOf(['Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n'], 'bookworm'),
    undefined,
    'source lines do not count',
  );
  t.equal(debianMirrorOf([''], 'bookworm'), undefined);
});

t.test('the cache file is named by every input, package order aside', async (t) => {
  const base = { suite: 'bookworm', variant: 'minbase', packages: ['systemd', 'rpm'], mirror: 'http://m.example/debian' };
  const name = rootfsFileName(base);
  t.match(name, /^debian-bookworm-[0-9a-f]{12}\.tar\.zst$/);
  t.equal(rootfsFileName({ ...base, packages: ['rpm', 'systemd'] }), name);
  t.not(rootfsFileName({ ...base, packages: ['systemd'] }), name, 'a package');
  t.not(rootfsFileName({ ...base, mirror: 'http://n.example/debian' }), name, 'the mirror');
  t.not(rootfsFileName({ ...base, variant: 'buildd' }), name, 'the variant');
});

t.test('mounts under a folder, deepest first, octal escapes decoded, neighbours left alone', async (t) => {
  const info = [
    '22 1 8:1 / / rw - ext4 /dev/vda rw',
    '30 22 0:5 / /c/st\\040x.tmp-1/root/proc rw - proc proc rw',
    '31 22 0:6 / /c/st\\040x.tmp-1/root/dev/null rw - devtmpfs udev rw',
    '32 22 0:7 / /c/st\\040x.tmp-12/root/proc rw - proc proc rw',
    '33 22 0:8 / /c/st\\040x.tmp-1 rw - tmpfs t rw',
  ].join('\n');
  t.same(mountsUnder(info, '/c/st x.tmp-1'), ['/c/st x.tmp-1/root/dev/null', '/c/st x.tmp-1/root/proc', '/c/st x.tmp-1']);
  t.same(mountsUnder(info, '/elsewhere'), []);
});
