import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { StoreError } from '../../src/store/errors.js';
import {
  CREDENTIAL_NAME,
  createMasterKeyFile,
  decodeMasterKey,
  generateMasterKey,
  masterKeyLocation,
  readMasterKey,
} from '../../src/store/master-key.js';

const keyText = () => randomBytes(32).toString('base64');

t.test('generateMasterKey: 32 random bytes in canonical base64', async (t) => {
  const a = generateMasterKey();
  const b = generateMasterKey();
  t.not(a, b);
  t.equal(Buffer.from(a, 'base64').length, 32);
  t.equal(decodeMasterKey(a, 'x').toString('base64'), a);
});

t.test('decodeMasterKey', async (t) => {
  const text = keyText();
  t.ok(decodeMasterKey(text, 'f').equals(Buffer.from(text, 'base64')));
  t.ok(
    decodeMasterKey(`  ${text}\n`, 'f').equals(Buffer.from(text, 'base64')),
    'surrounding whitespace / trailing newline is fine',
  );
  const bad: Array<[string, string]> = [
    ['empty', ''],
    ['whitespace', ' \n'],
    ['31 bytes', randomBytes(31).toString('base64')],
    ['33 bytes', randomBytes(33).toString('base64')],
    ['16 bytes', randomBytes(16).toString('base64')],
    ['hex', randomBytes(32).toString('hex')],
    ['garbage', 'not a key at all, certainly not!!'],
    ['base64 with junk inside', `${text.slice(0, 20)}!${text.slice(20)}`],
    ['missing padding', text.replace(/=+$/, '')],
    ['two keys', `${text}\n${keyText()}`],
  ];
  for (const [what, value] of bad) {
    t.throws(
      () => decodeMasterKey(value, '/k/master.key'),
      { name: 'StoreError', kind: 'bad_key_file', message: /^\/k\/master\.key: not a master key/ },
      what,
    );
  }
});

t.test('createMasterKeyFile: 0600 and never overwrites', async (t) => {
  const previous = process.umask(0o022);
  t.teardown(() => {
    process.umask(previous);
  });
  const dir = t.testdir({});
  const file = join(dir, 'master.key');
  t.equal(createMasterKeyFile(file), true);
  t.equal(statSync(file).mode & 0o777, 0o600);
  const first = readFileSync(file, 'utf8');
  t.equal(decodeMasterKey(first, file).length, 32);
  t.equal(createMasterKeyFile(file), false);
  t.equal(readFileSync(file, 'utf8'), first, 'the existing key is kept');
  writeFileSync(file, 'not even a key');
  t.equal(createMasterKeyFile(file), false, 'not even a broken one is replaced');
  t.equal(readFileSync(file, 'utf8'), 'not even a key');
});

t.test('readMasterKey from the key file', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'master.key');
  t.throws(() => readMasterKey(file, {}), { name: 'StoreError', kind: 'missing', message: `No master key at ${file}` });
  createMasterKeyFile(file);
  const source = readMasterKey(file, {});
  t.equal(source.origin, file);
  t.ok(source.key.equals(Buffer.from(readFileSync(file, 'utf8'), 'base64')));
  t.notMatch(source.origin, readFileSync(file, 'utf8'), 'origin does not carry the key');
});

t.test('readMasterKey refuses a key file others can read', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'master.key');
  createMasterKeyFile(file);
  for (const mode of [0o644, 0o640, 0o604]) {
    chmodSync(file, mode);
    const err = (() => {
      try {
        readMasterKey(file, {});
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(err instanceof StoreError, mode.toString(8));
    t.match(err, { kind: 'not_private', message: file });
    t.notMatch((err as Error).message, readFileSync(file, 'utf8').trim(), 'message never shows the key');
  }
  chmodSync(file, 0o400);
  t.doesNotThrow(() => readMasterKey(file, {}), '0400 is fine');
});

t.test('readMasterKey rejects a garbled key file', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'master.key');
  writeFileSync(file, 'garbage', { mode: 0o600 });
  t.throws(() => readMasterKey(file, {}), { kind: 'bad_key_file', message: /not a master key/ });
});

t.test('CREDENTIALS_DIRECTORY/master-key is preferred when present', async (t) => {
  const credKey = keyText();
  const dir = t.testdir({ creds: { [CREDENTIAL_NAME]: credKey }, empty: {} });
  const creds = join(dir, 'creds');
  const file = join(dir, 'master.key');
  createMasterKeyFile(file);
  const fileKey = readFileSync(file, 'utf8');
  t.not(fileKey, credKey);

  t.equal(masterKeyLocation(file, { CREDENTIALS_DIRECTORY: creds }), join(creds, CREDENTIAL_NAME));
  const source = readMasterKey(file, { CREDENTIALS_DIRECTORY: creds });
  t.equal(source.origin, join(creds, CREDENTIAL_NAME));
  t.equal(source.key.toString('base64'), credKey);

  // systemd makes the credential 0400/0440 root-owned; the file check does not apply to it.
  chmodSync(join(creds, CREDENTIAL_NAME), 0o644);
  t.equal(readMasterKey(file, { CREDENTIALS_DIRECTORY: creds }).key.toString('base64'), credKey);

  // Without the credential (or the variable) the key file is used.
  t.equal(masterKeyLocation(file, { CREDENTIALS_DIRECTORY: join(dir, 'empty') }), file);
  t.equal(readMasterKey(file, { CREDENTIALS_DIRECTORY: join(dir, 'empty') }).key.toString('base64'), fileKey);
  t.equal(readMasterKey(file, {}).key.toString('base64'), fileKey);
  t.equal(masterKeyLocation(file, { CREDENTIALS_DIRECTORY: '' }), file);
});
