import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import type { S3Credentials } from '../../src/core/types.js';
import {
  CredentialsFileSink,
  defaultCredentialsFile,
  deleteProfile,
  profileBody,
  profileName,
  removeProfile,
  setProfile,
  writeProfile,
} from '../../src/sinks/aws-credentials-file.js';
import type { WorkspaceRecord } from '../../src/store/store.js';
import { runProgram } from '../helpers/daemon.js';
import { throwawayUser } from '../helpers/users.js';
import { memoryLogger } from '../server/fixtures/memory-logger.js';

const BODY = ['aws_access_key_id = ASIANEW', 'aws_secret_access_key = s3cr3t/+=', 'aws_session_token = tok'];

// A file a user really has: comments, odd spacing, a profile with a comment before the next one,
// a line with no terminator at the end.
const USER_FILE = [
  '# my credentials',
  '[default]',
  'aws_access_key_id=AKIADEFAULT',
  'aws_secret_access_key =  x  ',
  '',
  ';  work account below',
  '[work]   ; trailing comment',
  'aws_access_key_id = AKIAWORK',
  'aws_secret_access_key = y',
].join('\n');

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eodh-sink-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const creds = (id: string, expiresAt = Date.now() + 3_600_000): S3Credentials => ({
  accessKeyId: id,
  secretAccessKey: `secret-${id}`,
  sessionToken: `token-${id}`,
  issuedAt: expiresAt - 3_600_000,
  expiresAt,
});

t.test('setProfile appends to a file without the profile, keeping every byte', async (t) => {
  const out = setProfile(USER_FILE, 'eodh-ws', BODY);
  t.ok(
    out.startsWith(`${USER_FILE}\n\n[eodh-ws]\n`),
    'the original text, a newline it lacked, a blank line, our section',
  );
  t.equal(out, `${USER_FILE}\n\n[eodh-ws]\n${BODY.join('\n')}\n`);
  t.equal(setProfile('', 'eodh-ws', BODY), `[eodh-ws]\n${BODY.join('\n')}\n`, 'an empty file gets just the section');
  t.equal(setProfile('[a]\nx = 1\n\n', 'p', ['k = v']), '[a]\nx = 1\n\n[p]\nk = v\n', 'no second blank line after one');
});

t.test('setProfile replaces the profile in place; the rest stays byte for byte', async (t) => {
  const before = `[default]\nk = 1\n\n[eodh-ws]\naws_access_key_id = OLD\nextra = gone\n# next is work\n\n[work]\nk = 2\n`;
  const out = setProfile(before, 'eodh-ws', BODY);
  t.equal(
    out,
    `[default]\nk = 1\n\n[eodh-ws]\n${BODY.join('\n')}\n# next is work\n\n[work]\nk = 2\n`,
    'trailing comments and blanks stay for the next section',
  );
  t.equal(setProfile(out, 'eodh-ws', BODY), out, 'writing the same values changes nothing');
  const middle = setProfile(USER_FILE, 'default', ['k = v']);
  t.equal(
    middle,
    USER_FILE.replace('[default]\naws_access_key_id=AKIADEFAULT\naws_secret_access_key =  x  \n', '[default]\nk = v\n'),
  );
});

t.test('setProfile keeps CRLF line endings and drops duplicate sections', async (t) => {
  const crlf = '[a]\r\nx = 1\r\n[p]\r\nold = 1\r\n[b]\r\ny = 2\r\n[p]\r\nold = 2\r\n';
  t.equal(setProfile(crlf, 'p', ['k = v']), '[a]\r\nx = 1\r\n[p]\r\nk = v\r\n[b]\r\ny = 2\r\n');
  t.equal(
    setProfile('[ p ]\nold = 1\n', 'p', ['k = v']),
    '[p]\nk = v\n',
    'a header with spaces inside the brackets is the same profile',
  );
  t.equal(
    setProfile('[eodh-ws-2]\nk = 1\n', 'eodh-ws', ['k = v']),
    '[eodh-ws-2]\nk = 1\n\n[eodh-ws]\nk = v\n',
    'a longer name is another profile',
  );
});

t.test('removeProfile takes out only the profile', async (t) => {
  const added = setProfile(`${USER_FILE}\n`, 'eodh-ws', BODY);
  t.equal(removeProfile(added, 'eodh-ws'), `${USER_FILE}\n`, 'add then remove gives the original back');
  const inside = `[a]\nx = 1\n\n[eodh-ws]\nk = 1\n# about b\n[b]\ny = 2`;
  t.equal(removeProfile(inside, 'eodh-ws'), `[a]\nx = 1\n\n# about b\n[b]\ny = 2`);
  t.equal(removeProfile(USER_FILE, 'eodh-ws'), USER_FILE, 'absent: unchanged');
  t.equal(removeProfile('[eodh-ws]\nk = 1\n', 'eodh-ws'), '', 'the only section');
});

t.test('profileBody carries the three keys and no expiry that a parser could mistake', async (t) => {
  const body = profileBody('ws', creds('ASIA1'));
  t.same(body.slice(1), [
    'aws_access_key_id = ASIA1',
    'aws_secret_access_key = secret-ASIA1',
    'aws_session_token = token-ASIA1',
  ]);
  t.match(body[0], /^# /);
  t.notMatch(body[0], /[=:]/, 'GDAL splits on = and :; the comment has neither');
  t.equal(profileName('ws'), 'eodh-ws');
});

t.test('defaultCredentialsFile follows AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials', async (t) => {
  t.equal(defaultCredentialsFile({ HOME: '/home/u' }), '/home/u/.aws/credentials');
  t.equal(defaultCredentialsFile({ HOME: '/home/u', AWS_SHARED_CREDENTIALS_FILE: '~/creds' }), '/home/u/creds');
  t.equal(defaultCredentialsFile({ HOME: '/home/u', AWS_SHARED_CREDENTIALS_FILE: '/etc/c' }), '/etc/c');
});

/** Workspace `ws` as the store hands it to the sink. */
const record = (fileSink: string | null): WorkspaceRecord => ({
  id: 'id-ws',
  name: 'ws',
  hubUrl: 'http://hub',
  region: 'eu-west-2',
  clientTokenId: 'ct',
  clientTokenHash: Buffer.alloc(32),
  fileSink,
  createdAt: 0,
});

t.test('writeProfile and deleteProfile: atomic, 0600, unchanged files not rewritten, links followed', async (t) => {
  const dir = tmp();
  const file = join(dir, 'new', '.aws', 'credentials');
  t.ok(writeProfile(file, 'ws', creds('ASIA1')), 'created, with its directory');
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.equal(statSync(join(dir, 'new', '.aws')).mode & 0o777, 0o700, 'a directory we create is private');
  const ino = statSync(file).ino;
  t.notOk(writeProfile(file, 'ws', creds('ASIA1')), 'same credential: no write');
  t.equal(statSync(file).ino, ino, 'the file was not replaced');
  t.ok(writeProfile(file, 'ws', creds('ASIA2')));
  t.not(statSync(file).ino, ino, 'a change replaces the file (rename)');
  t.match(readFileSync(file, 'utf8'), /aws_access_key_id = ASIA2\n/);
  t.same(readdirSync(join(dir, 'new', '.aws')), ['credentials'], 'no temp file left');

  const user = join(dir, 'user-credentials');
  writeFileSync(user, USER_FILE, { mode: 0o644 });
  t.ok(writeProfile(user, 'ws', creds('ASIA3')));
  t.ok(readFileSync(user, 'utf8').startsWith(USER_FILE), "the user's profiles are untouched");
  t.equal(statSync(user).mode & 0o777, 0o600, 'the file holding our secrets is 0600');
  t.ok(deleteProfile(user, 'ws'));
  t.equal(readFileSync(user, 'utf8'), `${USER_FILE}\n`, "back to the user's text (plus the final newline it lacked)");
  t.notOk(deleteProfile(user, 'ws'), 'nothing to remove: no write');
  t.notOk(deleteProfile(join(dir, 'absent'), 'ws'), 'no file: nothing to do');

  mkdirSync(join(dir, 'dotfiles'));
  const real = join(dir, 'dotfiles', 'credentials');
  writeFileSync(real, '[default]\nk = 1\n', { mode: 0o600 });
  const link = join(dir, 'link');
  symlinkSync(real, link);
  writeProfile(link, 'ws', creds('ASIA4'));
  t.ok(lstatSync(link).isSymbolicLink(), 'the link stays a link');
  t.match(readFileSync(real, 'utf8'), /^\[default\]\nk = 1\n\n\[eodh-ws\]\n/);
});

t.test('CredentialsFileSink follows renewals, settings and removals', async (t) => {
  const dir = tmp();
  const fileA = join(dir, 'a');
  const fileB = join(dir, 'b');
  writeFileSync(fileA, '[default]\nk = 1\n', { mode: 0o600 });
  const log = memoryLogger('info');
  let now = Date.now();
  const sink = new CredentialsFileSink({ logger: log.logger, clock: { now: () => now } });
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };

  sink.reconcile([{ record: record(null), current: creds('ASIA0') }]);
  t.equal(read(fileA), '[default]\nk = 1\n', 'sink off: nothing written');
  sink.renewed(record(null), creds('ASIA0'));
  t.equal(read(fileA), '[default]\nk = 1\n');

  sink.reconcile([{ record: record(fileA), current: creds('ASIA1') }]);
  t.match(read(fileA), /ASIA1/, 'enabled: written at once with the valid credential');
  sink.renewed(record(fileA), creds('ASIA2'));
  t.match(read(fileA), /aws_access_key_id = ASIA2/, 'every renewal rewrites it');

  sink.reconcile([{ record: record(fileB), current: creds('ASIA2') }]);
  t.equal(read(fileA), '[default]\nk = 1\n', 'moved: gone from the old file');
  t.match(read(fileB), /ASIA2/, 'and in the new one');

  sink.reconcile([{ record: record(null), current: creds('ASIA2') }]);
  t.equal(read(fileB), '', 'disabled: the profile is removed');

  const expired = creds('ASIAOLD', now - 1_000);
  sink.reconcile([{ record: record(fileA), current: expired }]);
  t.equal(read(fileA), '[default]\nk = 1\n', 'an expired credential is never written');
  sink.renewed(record(fileA), creds('ASIA3'));
  t.match(read(fileA), /ASIA3/, 'the next renewal writes it');

  sink.removed(record(fileA));
  t.equal(read(fileA), '[default]\nk = 1\n', 'workspace removed: profile removed');

  writeFileSync(join(dir, 'blocked'), 'a file where a directory should be');
  const blocked = join(dir, 'blocked', 'credentials');
  t.doesNotThrow(() => sink.renewed(record(blocked), creds('ASIA4')), 'a failed write is not thrown');
  t.match(
    log.lines().at(-1),
    { level: 40, workspace: 'ws', file: blocked, code: 'ENOTDIR', msg: /could not update the credentials file/ },
    'but logged as a warning naming the file',
  );
  now += 1;
});

t.test('files others can touch are refused: FIFOs, devices, directories, open directories', async (t) => {
  const dir = tmp();
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  // A FIFO would block a plain read until a writer came: this returns at once, refused.
  t.throws(() => writeProfile(fifo, 'ws', creds('ASIA1')), {
    message: `${fifo}: it is a FIFO, not a regular file; the credentials file is not written there.`,
    exitCode: 77,
  });
  t.throws(() => deleteProfile(fifo, 'ws'), { message: /it is a FIFO/ });
  t.ok(lstatSync(fifo).isFIFO(), 'the FIFO is left as it was');
  t.throws(() => writeProfile('/dev/null', 'ws', creds('ASIA1')), { message: /it is a device/ });
  mkdirSync(join(dir, 'adir'));
  t.throws(() => writeProfile(join(dir, 'adir'), 'ws', creds('ASIA1')), { message: /it is a directory/ });

  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  t.throws(() => writeProfile(join(open, 'credentials'), 'ws', creds('ASIA1')), {
    message: `${join(open, 'credentials')}: its directory ${open} is writable by other users (mode 0777); the credentials file is not written there.`,
  });
  mkdirSync(join(open, 'private'), { mode: 0o700 });
  t.throws(
    () => writeProfile(join(open, 'private', 'credentials'), 'ws', creds('ASIA1')),
    { message: /its directory .*\/open is writable by other users/ },
    'a directory above it counts too: whoever can write there can swap the one below',
  );
  chmodSync(open, 0o770);
  t.throws(() => writeProfile(join(open, 'credentials'), 'ws', creds('ASIA1')), { message: /mode 0770/ });
  t.same(readdirSync(open), ['private'], 'nothing was written');

  const sticky = join(dir, 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  t.ok(writeProfile(join(sticky, 'credentials'), 'ws', creds('ASIA1')), 'a sticky directory (like /tmp) is fine');

  // The daemon logs the refusal and keeps serving.
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
  const sink = new CredentialsFileSink({ logger, clock: { now: () => Date.now() } });
  t.doesNotThrow(() => sink.renewed(record(fifo), creds('ASIA2')));
  t.match(lines.join(''), /could not update the credentials file: .*it is a FIFO/);
  t.notMatch(lines.join(''), /secret-ASIA2/, 'no secret in the warning');
});

t.test("another user's symlink or file in a shared directory is not followed, not written", async (t) => {
  const mallory = throwawayUser(t, 'credd-loc-sl');
  if (!mallory) return;
  const dir = tmp();
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777); // like /tmp: anyone may create entries, nobody may replace another's
  const victim = join(dir, 'victim-file');
  writeFileSync(victim, 'precious\n', { mode: 0o600 });
  chmodSync(dir, 0o755); // so that mallory can reach the shared directory

  const planted = join(shared, 'credentials');
  const ln = await runProgram(mallory.runAs[0]!, [...mallory.runAs.slice(1), 'ln', '-s', victim, planted]);
  t.equal(ln.code, 0, ln.stderr);
  t.equal(lstatSync(planted).uid, mallory.uid, "the link is mallory's");
  t.throws(() => writeProfile(planted, 'ws', creds('ASIA1')), {
    message: `${planted}: ${planted} is a symbolic link of another user (uid ${mallory.uid}), which is not followed; the credentials file is not written there.`,
    exitCode: 77,
  });
  t.throws(() => deleteProfile(planted, 'ws'), { message: /symbolic link of another user/ });
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the file it points to is untouched');

  const squatted = join(shared, 'other-credentials');
  const touch = await runProgram(mallory.runAs[0]!, [
    ...mallory.runAs.slice(1),
    'sh',
    '-c',
    `umask 0; printf '[default]\\n' > ${squatted}`,
  ]);
  t.equal(touch.code, 0, touch.stderr);
  t.throws(() => writeProfile(squatted, 'ws', creds('ASIA1')), {
    message: `${squatted}: it belongs to another user (uid ${mallory.uid}); the credentials file is not written there.`,
  });
  t.equal(readFileSync(squatted, 'utf8'), '[default]\n', "mallory's file got no credential");

  const foreignDir = join(dir, 'theirs');
  mkdirSync(foreignDir, { mode: 0o755 });
  chownSync(foreignDir, mallory.uid, mallory.gid);
  t.throws(() => writeProfile(join(foreignDir, 'credentials'), 'ws', creds('ASIA1')), {
    message: `${join(foreignDir, 'credentials')}: its directory ${foreignDir} belongs to another user (uid ${mallory.uid}); the credentials file is not written there.`,
  });
});
