import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { StoreError } from '../../src/store/errors.js';
import { assertPrivate, createSecretFile, ensurePrivateDir, replaceSecretFile } from '../../src/store/files.js';

const mode = (path: string) => statSync(path).mode & 0o777;

/** Run with a permissive umask, restoring the previous one afterwards. */
function withUmask(t: { teardown(fn: () => void): void }, umask: number): void {
  const previous = process.umask(umask);
  t.teardown(() => {
    process.umask(previous);
  });
}

t.test('ensurePrivateDir creates 0700 directories even under a permissive umask', async (t) => {
  withUmask(t, 0o022);
  const root = t.testdir({});
  const dir = join(root, 'a', 'b', 'c');
  ensurePrivateDir(dir);
  t.equal(mode(dir), 0o700);
  t.ok(statSync(dir).isDirectory());
  ensurePrivateDir(dir);
  t.equal(mode(dir), 0o700, 'idempotent on an existing private directory');
});

t.test('ensurePrivateDir refuses an existing 0755 directory', async (t) => {
  const root = t.testdir({ open: {} });
  const dir = join(root, 'open');
  chmodSync(dir, 0o755);
  const err = (() => {
    try {
      ensurePrivateDir(dir);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.ok(err instanceof StoreError, 'a StoreError');
  t.match(err, { kind: 'not_private' });
  t.match((err as Error).message, dir, 'names the path');
  t.match((err as Error).message, /0755/, 'shows the mode');
  t.match((err as Error).message, `chmod 700 ${dir}`, 'says how to fix it');
  t.equal(mode(dir), 0o755, 'not "fixed" behind the user\'s back');
});

t.test('assertPrivate', async (t) => {
  const root = t.testdir({ f: 'x', d: {} });
  const f = join(root, 'f');
  const d = join(root, 'd');
  chmodSync(f, 0o600);
  chmodSync(d, 0o700);
  t.doesNotThrow(() => assertPrivate(f, 'file', 600));
  t.doesNotThrow(() => assertPrivate(d, 'directory', 700));
  chmodSync(f, 0o400);
  t.doesNotThrow(() => assertPrivate(f, 'file', 600), 'read-only for the owner is fine');
  for (const m of [0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o644, 0o666]) {
    chmodSync(f, m);
    t.throws(
      () => assertPrivate(f, 'file', 600),
      { name: 'StoreError', kind: 'not_private', message: /this file is accessible by other users/ },
      m.toString(8),
    );
  }
  chmodSync(d, 0o701);
  t.throws(() => assertPrivate(d, 'directory', 700), { kind: 'not_private', message: /chmod 700/ });
  t.throws(() => assertPrivate(join(root, 'missing'), 'file', 600), { code: 'ENOENT' });
});

t.test('createSecretFile: 0600, never overwrites', async (t) => {
  withUmask(t, 0o022);
  const root = t.testdir({});
  const f = join(root, 'secret');
  t.equal(createSecretFile(f, 'first'), true);
  t.equal(mode(f), 0o600);
  t.equal(readFileSync(f, 'utf8'), 'first');
  t.equal(createSecretFile(f, 'second'), false, 'reports it already exists');
  t.equal(readFileSync(f, 'utf8'), 'first', 'content untouched');
  t.throws(() => createSecretFile(join(root, 'no-such-dir', 'x'), 'y'), { code: 'ENOENT' }, 'other errors propagate');
});

t.test('replaceSecretFile: atomic, 0600, leaves no temp file', async (t) => {
  withUmask(t, 0o022);
  const root = t.testdir({ creds: 'old' });
  const f = join(root, 'creds');
  chmodSync(f, 0o644);
  replaceSecretFile(f, 'new content');
  t.equal(readFileSync(f, 'utf8'), 'new content');
  t.equal(mode(f), 0o600, 'mode is tightened on replace');
  t.same(readdirSync(root), ['creds'], 'no temp file left behind');
  replaceSecretFile(join(root, 'fresh'), 'x', 0o640);
  t.equal(mode(join(root, 'fresh')), 0o640, 'explicit mode is honoured');
  mkdirSync(join(root, 'dir'));
  writeFileSync(join(root, 'dir', 'keep'), '');
  t.throws(() => replaceSecretFile(join(root, 'dir'), 'x'), 'cannot replace a directory');
  t.same(readdirSync(root).sort(), ['creds', 'dir', 'fresh'], 'a failed replace leaves no temp copy of the secret');
});
