import { spawnSync } from 'node:child_process';
import t from 'tap';
import { credentialProcessCommand, profileStanza, quoteArg } from '../../src/cli/aws-profile.js';
import { processDocument } from '../../src/cli/credential-process.js';

t.test('quoteArg leaves plain paths alone and single-quotes the rest', async (t) => {
  t.equal(quoteArg('/usr/bin/node'), '/usr/bin/node');
  t.equal(quoteArg('/Users/me/Library/Application Support/x'), `'/Users/me/Library/Application Support/x'`);
  t.equal(quoteArg(`it's`), `'it'\\''s'`);
});

t.test('the credential_process line splits back into the same arguments under sh', async (t) => {
  const config = `/tmp/my configs/it's "here".toml`;
  const line = credentialProcessCommand('ws1', config);
  // The JS and Go SDKs run it with sh -c; botocore's shlex.split follows the same POSIX rules.
  const out = spawnSync('/bin/sh', ['-c', `set -- ${line}; for a in "$@"; do printf '%s\\n' "$a"; done`], {
    encoding: 'utf8',
  });
  const args = out.stdout.split('\n').slice(0, -1);
  t.same(args.slice(-4), ['--config', config, 'credential-process', 'ws1']);
  t.equal(args[0], process.execPath);
  t.match(args[1], /\/cli\/main\.js$/);
});

t.test('profileStanza', async (t) => {
  const lines = profileStanza('eodh-ws1', 'ws1', 'eu-west-2');
  t.equal(lines[0], '[profile eodh-ws1]');
  t.match(lines[1], /^credential_process = \S+ \S+main\.js credential-process ws1$/);
  t.equal(lines[2], 'region = eu-west-2');
});

t.test('processDocument speaks credential_process: Version 1 and SessionToken', async (t) => {
  const doc = JSON.parse(
    processDocument({ AccessKeyId: 'ASIA1', SecretAccessKey: 's', Token: 'tok', Expiration: '2030-01-01T00:00:00Z' }),
  ) as Record<string, unknown>;
  t.same(doc, {
    Version: 1,
    AccessKeyId: 'ASIA1',
    SecretAccessKey: 's',
    SessionToken: 'tok',
    Expiration: '2030-01-01T00:00:00Z',
  });
});
