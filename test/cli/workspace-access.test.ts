/**
 * `workspace allow|deny` (#12) through the built CLI: names and ids from the real /etc/passwd and
 * /etc/group, one-sentence usage errors, the daemon's own user, and the grants as `workspace list`
 * and `status --json` show them. (The daemon enforcing them, as other users: test/integration/shared-workspace.test.ts.)
 */
import t from 'tap';
import type { StatusRow } from '../../src/cli/status.js';
import { readAccounts } from '../../src/config/accounts.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { startHubSimulator } from '../../src/hub-sim/index.js';
import { makeHome, runCli } from '../helpers/daemon.js';

const OWN_UID = process.getuid?.() ?? 0;

t.test('allow and deny users and groups; list and status show them', async (t) => {
  const accounts = readAccounts();
  // Someone else on this machine, and their primary group.
  const other = accounts.users.find((u) => u.uid !== OWN_UID && u.gid !== 0);
  const own = accounts.users.find((u) => u.uid === OWN_UID);
  const group = accounts.groups.find((g) => g.gid === other?.gid);
  if (!other || !group) throw new Error('this machine has no account besides ours to grant (/etc/passwd, /etc/group)');

  const hub = await startHubSimulator({ s3LifetimeSeconds: 3600 });
  t.teardown(() => hub.close());
  const key = await new HubSimulatorClient(hub.url).createKey('ws', { expiresDays: 30 });
  const home = makeHome(t);
  t.equal((await runCli(home, ['init'])).code, 0);
  const added = await runCli(home, ['workspace', 'add', 'ws', '--hub', hub.url, '--token-id', key.id], {
    stdin: key.token,
  });
  t.equal(added.code, 0, added.stderr);
  const cli = (...args: string[]) => runCli(home, args);

  // Usage errors: one sentence naming what is wrong, exit 64, nothing stored.
  const usage: Array<[string[], RegExp]> = [
    [['workspace', 'allow', 'ws'], /^eodh-credd: Give one of --user USER or --group GROUP\.\n$/],
    [['workspace', 'allow', 'ws', '--user', other.name, '--group', group.name], /Give one of --user/],
    [
      ['workspace', 'allow', 'ws', '--user', 'credd-no-such-user'],
      /^eodh-credd: No user "credd-no-such-user" in \/etc\/passwd; give a name it lists, or a numeric uid\.\n$/,
    ],
    [
      ['workspace', 'allow', 'ws', '--group', 'credd-no-such-group'],
      /^eodh-credd: No group "credd-no-such-group" in \/etc\/group; give a name it lists, or a numeric gid\.\n$/,
    ],
    [['workspace', 'deny', 'ws', '--user', 'credd-no-such-user'], /No user "credd-no-such-user" in \/etc\/passwd/],
    [['workspace', 'allow', 'wz', '--user', other.name], /No workspace "wz"\. Did you mean "ws"\?/],
    [['workspace', 'allow', 'Bad_Name', '--user', other.name], /is not a workspace name/],
  ];
  for (const [args, message] of usage) {
    const r = await cli(...args);
    t.equal(r.code, 64, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
  }
  t.match((await cli('workspace', 'list')).stdout, /^ws\t\S+\teu-west-2\t-$/m, 'nobody else allowed yet');

  // The daemon's own user: a no-op with a note, by name or by number.
  for (const who of [String(OWN_UID), ...(own ? [own.name] : [])]) {
    const r = await cli('workspace', 'allow', 'ws', '--user', who);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /is the daemon's own user, which may always read every workspace; nothing changed\./);
  }

  const user = `user ${other.name} (uid ${other.uid})`;
  let r = await cli('workspace', 'allow', 'ws', '--user', other.name);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `Workspace "ws": ${user} may now fetch its S3 credentials and API key, with its client token.`);
  t.match(
    r.stdout,
    /Hand them the client token in a file only they can read, e\.g\. the output of "eodh-credd env ws"/,
  );
  r = await cli('workspace', 'allow', 'ws', '--user', String(other.uid));
  t.match(r.stdout, `${user} was already allowed; nothing changed.`, 'the same user by uid');

  r = await cli('workspace', 'allow', 'ws', '--group', String(group.gid));
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `group ${group.name} (gid ${group.gid}) may now fetch`);
  t.match(r.stdout, new RegExp(`Its members now: .*\\b${other.name}\\b`), 'its members as the files say');

  // A uid no file names (a directory-service user): allowed by number, with a note.
  r = await cli('workspace', 'allow', 'ws', '--user', '3999999');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, 'uid 3999999 may now fetch');
  t.match(r.stdout, 'Note: no user in /etc/passwd has this id; it was allowed by number.');

  t.match(
    (await cli('workspace', 'list')).stdout,
    `ws\t${hub.url}\teu-west-2\t${user}, uid 3999999, group ${group.name} (gid ${group.gid})\n`,
  );
  const status = await cli('status', '--json');
  const [row] = JSON.parse(status.stdout) as StatusRow[];
  t.same(row?.allowed, [
    { kind: 'user', id: other.uid, name: other.name },
    { kind: 'user', id: 3999999, name: null },
    { kind: 'group', id: group.gid, name: group.name },
  ]);
  t.match((await cli('status')).stdout, `ws: `, 'the table');
  t.match((await cli('status')).stdout, `also allowed: ${user}, uid 3999999, group ${group.name} (gid ${group.gid})`);

  // deny: by name or by id; the user is still in through the group, and told so.
  r = await cli('workspace', 'deny', 'ws', '--user', other.name);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `Workspace "ws": ${user} may no longer read it.`);
  t.match(r.stdout, `Note: they are still allowed through group ${group.name} (gid ${group.gid}).`);
  r = await cli('workspace', 'deny', 'ws', '--user', other.name);
  t.match(r.stdout, `${user} was not allowed; nothing changed.`);
  r = await cli('workspace', 'deny', 'ws', '--group', group.name);
  t.match(r.stdout, `group ${group.name} (gid ${group.gid}) may no longer read it.`);
  r = await cli('workspace', 'deny', 'ws', '--user', '3999999');
  t.match(r.stdout, 'uid 3999999 may no longer read it.');
  t.match((await cli('workspace', 'list')).stdout, /^ws\t\S+\teu-west-2\t-$/m, 'nobody else any more');
  t.same((JSON.parse((await cli('status', '--json')).stdout) as StatusRow[])[0]?.allowed, []);
});
