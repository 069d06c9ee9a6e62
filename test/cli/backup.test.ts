/**
 * `eodh-credd backup FILE` / `restore FILE` through the CLI, and what the CLI says when the
 * database is lost, damaged, read-only or on a full disk (#13): every case a clear sentence and
 * its own exit code, nothing overwritten, never a fresh install.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { openDatabase } from '../../src/store/database.js';
import { MASTER_KEY_BYTES, sealingKey } from '../../src/store/seal.js';
import { createInstallation, getCredentials, type Installation } from '../security/fixtures/installation.js';

const newKey = () => sealingKey(randomBytes(MASTER_KEY_BYTES));
const mode = (file: string) => statSync(file).mode & 0o777;

t.test('backup while the daemon serves, restore after a loss, and the daemon serves again', async (t) => {
  const inst = await createInstallation(t);
  const alpha = await inst.addWorkspace('alpha');
  const daemon = await inst.serve();
  const backup = join(inst.home, 'credd-backup.db');

  const made = await inst.cli(['backup', backup]);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /Backup written to .*opens only with the master key/s);
  t.equal(mode(backup), 0o600, 'the backup is owner-only');
  t.notOk(readFileSync(backup).includes(alpha.apiKey), 'the API key is sealed in the backup');

  const restoring = await inst.cli(['restore', backup]);
  t.equal(restoring.code, 75, 'restore refuses while the daemon runs');
  t.match(restoring.stderr, /stop it first.*Nothing was changed/);
  await daemon.stop();

  // The loss: the database emptied. Every command names it, nothing starts over.
  truncateSync(inst.paths.database, 0);
  for (const args of [['status'], ['workspace', 'list']]) {
    const run = await inst.cli(args);
    t.equal(run.code, 76, `${args.join(' ')}: exit 76`);
    t.match(run.stderr, /is empty .*not taken as a new install.*eodh-credd restore/);
  }
  const doctor = await inst.cli(['doctor', '--json']);
  const checks = JSON.parse(doctor.stdout) as Array<{ name: string; status: string; detail: string }>;
  t.match(
    checks.find((c) => c.status === 'fail' && /is empty/.test(c.detail)),
    { name: 'database' },
    'doctor blames the database, not the key',
  );
  t.equal(
    checks.find((c) => c.name === 'master key'),
    undefined,
    'and says nothing against the key',
  );

  const restored = await inst.cli(['restore', backup]);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /\(1 workspaces\).*kept at .*before-restore-/s);
  const aside = /kept at (\S+)\./.exec(restored.stdout)?.[1];
  t.ok(aside && existsSync(aside), 'the replaced database is kept aside');
  t.equal(mode(inst.paths.database), 0o600);

  const again = await inst.serve();
  const served = await getCredentials(again.url, 'alpha', alpha.clientToken);
  t.equal(served.status, 200, 'the daemon serves from the restored database');
  await again.stop();
});

t.test('restore refuses a file that is not a backup under this master key, changing nothing', async (t) => {
  const inst = await createInstallation(t);
  await inst.addWorkspace('alpha');
  // A backup of another installation: sealed under another master key.
  const foreignBackup = join(inst.home, 'other.db');
  const other = openDatabase({ file: join(inst.home, 'other', 'credd.db'), key: newKey(), create: true });
  await other.backup(foreignBackup);
  other.close();
  const garbage = join(inst.home, 'garbage.db');
  writeFileSync(garbage, 'not a database at all, not even close'.repeat(200), { mode: 0o600 });
  const before = readFileSync(inst.paths.database);
  for (const [file, code, message] of [
    [foreignBackup, 78, /master key does not match/],
    [garbage, 76, /malformed/],
    [join(inst.home, 'nope.db'), 78, /No backup at/],
  ] as const) {
    const run = await inst.cli(['restore', file]);
    t.equal(run.code, code, `${file}: exit ${code}`);
    t.match(run.stderr, message);
    t.same(readFileSync(inst.paths.database), before, 'the database is untouched');
  }
  t.equal((await inst.cli(['workspace', 'list'])).code, 0);
});

t.test('a garbage or half-truncated database is named malformed (exit 76)', async (t) => {
  for (const damage of ['garbage', 'truncated'] as const) {
    const inst = await createInstallation(t);
    await inst.addWorkspace('alpha');
    if (damage === 'garbage') writeFileSync(inst.paths.database, Buffer.alloc(65536, 0x5a));
    else truncateSync(inst.paths.database, Math.floor(statSync(inst.paths.database).size / 2));
    const run = await inst.run(['status']);
    t.equal(run.code, 76, `${damage}: exit 76`);
    t.match(run.stderr, /is malformed/, damage);
    t.notMatch(run.stderr, /internal error/);
  }
});

t.test('status reads a read-only data directory', async (t) => {
  const inst = await createInstallation(t);
  await inst.addWorkspace('alpha');
  const dir = inst.paths.dataDir;
  if (spawnSync('mount', ['--bind', dir, dir]).status !== 0) {
    t.comment('skipped: mount --bind is not allowed here');
    return;
  }
  // Unmounted here, not in a teardown: tap removes the test directory before teardowns run.
  try {
    await readOnlyChecks(t, inst, dir);
  } finally {
    spawnSync('umount', [dir]);
  }
});

async function readOnlyChecks(t: Test, inst: Installation, dir: string): Promise<void> {
  t.equal(spawnSync('mount', ['-o', 'remount,ro,bind', dir]).status, 0);
  const status = await inst.cli(['status', '--json']);
  t.ok([0, 2, 3].includes(status.code ?? -1), `status answers (${status.code}): ${status.stderr}`);
  t.match(JSON.parse(status.stdout), [{ workspace: 'alpha' }]);
  const write = await inst.cli(['client-token', 'rotate', 'alpha']);
  t.equal(write.code, 73, 'a write says the directory is read-only');
  t.match(write.stderr, /read-only file system/);
}

t.test('a full disk is reported as such (exit 74), and nothing is lost', async (t) => {
  const inst = await createInstallation(t, { init: false });
  const mountPoint = join(inst.home, 'data');
  mkdirSync(mountPoint, { recursive: true, mode: 0o700 });
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mountPoint]).status !== 0) {
    t.comment('skipped: mounting a tmpfs is not allowed here');
    return;
  }
  try {
    await diskFullChecks(t, inst, mountPoint);
  } finally {
    spawnSync('umount', ['-l', mountPoint]);
  }
});

async function diskFullChecks(t: Test, inst: Installation, mountPoint: string): Promise<void> {
  t.equal((await inst.cli(['init'])).code, 0);
  await inst.addWorkspace('alpha');
  // Fill the file system to the last byte.
  spawnSync('dd', ['if=/dev/zero', `of=${join(mountPoint, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
  const rotate = await inst.cli(['client-token', 'rotate', 'alpha']);
  t.equal(rotate.code, 74, `exit 74: ${rotate.stderr}`);
  t.match(rotate.stderr, /the disk is full/);
  const backup = await inst.cli(['backup', join(mountPoint, 'b.db')]);
  t.equal(backup.code, 74, 'a backup onto the full disk too');
  t.match(backup.stderr, /the disk is full/);
  spawnSync('rm', [join(mountPoint, 'filler')]);
  const list = await inst.cli(['workspace', 'list']);
  t.match(list.stdout, /^alpha\t/m, 'the workspace is still there once space is freed');
}
