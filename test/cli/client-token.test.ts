/**
 * `eodh-credd client-token rotate <ws>` through the built CLI, against a running daemon: the old
 * token stops working once the daemon has seen the change (it polls PRAGMA data_version each
 * second), the new one works, and the token never shows on the terminal.
 */

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createInstallation, getCredentials } from '../security/fixtures/installation.js';

t.test(
  'rotate: new token in the file, old one refused by the running daemon once it has seen the change',
  async (t) => {
    const inst = await createInstallation(t);
    const { clientToken: oldToken } = await inst.addWorkspace('alpha');
    const { clientToken: betaToken } = await inst.addWorkspace('beta');
    const daemon = await inst.serve();
    t.equal((await getCredentials(daemon.url, 'alpha', oldToken)).status, 200, 'the old token works before');

    const run = await inst.run(['client-token', 'rotate', 'alpha']);
    t.equal(run.code, 0, run.stderr);
    const file = join(inst.paths.tokensDir, 'alpha.token');
    const newToken = readFileSync(file, 'utf8');
    t.not(newToken, oldToken, 'a new token');
    t.match(newToken, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url, no newline');
    t.equal(statSync(file).mode & 0o777, 0o600);
    t.match(run.stdout, file, 'names the file');
    t.notMatch(run.stdout + run.stderr, newToken, 'never prints the token');
    t.notMatch(run.stdout + run.stderr, oldToken);

    // The daemon notices the change within a second (it polls PRAGMA data_version) and says so.
    await daemon.waitForOutput((o) => o.includes('client token replaced') && o.includes('"workspace":"alpha"'));
    t.equal((await getCredentials(daemon.url, 'alpha', oldToken)).status, 401, 'from then on the old token is refused');
    t.equal((await getCredentials(daemon.url, 'alpha', newToken)).status, 200, 'the new token works');
    t.equal(
      (await getCredentials(daemon.url, 'beta', betaToken)).status,
      200,
      "another workspace's token is untouched",
    );
    t.equal((await getCredentials(daemon.url, 'beta', newToken)).status, 403, "the new token is alpha's only");

    const alphaAudits = () =>
      daemon
        .output()
        .split('\n')
        .filter((l) => l.includes('"audit":true') && l.includes('"workspace":"alpha"'));
    await daemon.waitForOutput(() => alphaAudits().length >= 2);
    const audits = alphaAudits();
    t.ok(audits.length >= 2, 'one audit line per client token');
    const ids = new Set(audits.map((l) => (JSON.parse(l) as { clientTokenId: string }).clientTokenId));
    t.equal(ids.size, 2, 'the rotated token shows up under its new id');
    for (const secret of [oldToken, newToken]) t.notMatch(daemon.output(), secret, 'no client token in the log');
  },
);

t.test('rotate without a daemon, and the usage errors', async (t) => {
  const inst = await createInstallation(t);
  const { clientToken } = await inst.addWorkspace('alpha');
  const run = await inst.run(['client-token', 'rotate', 'alpha']);
  t.equal(run.code, 0, run.stderr);
  t.not(readFileSync(join(inst.paths.tokensDir, 'alpha.token'), 'utf8'), clientToken);

  const unknown = await inst.run(['client-token', 'rotate', 'gamma']);
  t.equal(unknown.code, 64);
  t.match(unknown.stderr, /No workspace "gamma"/);
  t.equal((await inst.run(['client-token', 'rotate'])).code, 64, 'no name');
  t.equal((await inst.run(['client-token', 'rotate', '../alpha'])).code, 64, 'not a workspace name');
  t.equal((await inst.run(['client-token', 'show', 'alpha'])).code, 64, 'unknown subcommand');
  t.equal((await inst.run(['client-token', 'rotate', 'alpha', 'extra'])).code, 64, 'extra argument');
});
