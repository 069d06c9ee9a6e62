/**
 * A workspace shared on a multi-user machine (#12): the real daemon runs as root, as the system
 * service would run it for everyone, and a throw-away user fetches credentials with the
 * workspace's client token from processes of its own. Refused (403 forbidden_peer) until
 * `workspace allow`, served after it, refused again after `workspace deny`; the same through a
 * group, including a user added to the group while the daemon runs. A grant never opens another
 * workspace, /metrics, /healthz or the admin routes.
 */
import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { startHubSimulator } from '../../src/hub-sim/index.js';
import { clientToken, makeHome, runCli, runProgram, startServe, waitFor } from '../helpers/daemon.js';
import { requireFeature } from '../helpers/tools.js';
import { noUsersReason, throwawayUser } from '../helpers/users.js';

const USER = 'credd-it-share';
const GROUP = 'credd-it-shgrp';
const LATER_GROUP = 'credd-it-shlat';

t.setTimeout(240_000);

interface Answer {
  readonly path: string;
  readonly status: number;
  readonly body: string;
}

/** Remove the group if it exists (a crashed run may have left it). */
function removeGroup(name: string): void {
  try {
    execFileSync('getent', ['group', name], { stdio: 'ignore' });
  } catch {
    return;
  }
  execFileSync('groupdel', [name]);
}

function throwawayGroup(t: Test, name: string): void {
  removeGroup(name);
  execFileSync('groupadd', [name]);
  t.teardown(() => removeGroup(name));
}

t.test('allow and deny, by user and by group, against the real daemon as another uid', async (t) => {
  const reason = noUsersReason();
  if (!requireFeature(t, 'way to create throw-away users', reason === null, reason ?? undefined)) return;
  const user = throwawayUser(t, USER);
  if (!user) return;

  const sim = await startHubSimulator({ s3LifetimeSeconds: 3600 });
  t.teardown(() => sim.close());
  const hub = new HubSimulatorClient(sim.url);
  const home = makeHome(t);
  t.equal((await runCli(home, ['init'])).code, 0);
  for (const ws of ['ws', 'other']) {
    const key = await hub.createKey(ws, { expiresDays: 30 });
    const added = await runCli(home, ['workspace', 'add', ws, '--hub', sim.url, '--token-id', key.id], {
      stdin: key.token,
    });
    t.equal(added.code, 0, added.stderr);
  }
  const daemon = await startServe(home, { t });
  const token = clientToken(home, 'ws');
  const otherToken = clientToken(home, 'other');

  /** GET each [path, token] from a process of the throw-away user, over TCP to the daemon. */
  const asUser = async (requests: Array<[string, string]>): Promise<Answer[]> => {
    const script = `
      const out = [];
      for (const [path, token] of JSON.parse(process.argv[1])) {
        const r = await fetch(${JSON.stringify(daemon.url)} + path, { headers: token ? { authorization: token } : {} });
        out.push({ path, status: r.status, body: await r.text() });
      }
      console.log(JSON.stringify(out));`;
    const [command, ...prefix] = user.runAs;
    const run = await runProgram(
      command!,
      [...prefix, process.execPath, '--input-type=module', '-e', script, JSON.stringify(requests)],
      { cwd: user.home },
    );
    t.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout) as Answer[];
  };
  const credentials = (): Promise<Answer> =>
    asUser([['/v1/workspaces/ws/credentials', token]]).then((answers) => answers[0]!);
  const isRefusedPeer = (a: Answer) => a.status === 403 && /"code":"forbidden_peer"/.test(a.body);

  /** Run a CLI command that changes who may read a workspace, and wait until the daemon has applied it. */
  const accessChanges = () =>
    daemon
      .output()
      .split('\n')
      .filter((l) => l.includes('workspace access changed')).length;
  const change = async (args: string[]) => {
    const before = accessChanges();
    const r = await runCli(home, args);
    t.equal(r.code, 0, args.join(' '), { stderr: r.stderr });
    await waitFor(() => accessChanges() > before, 10_000, { what: `the daemon to apply "${args.join(' ')}"` });
    return r;
  };

  // Before any grant: the token is worth nothing to this user.
  const refused = await credentials();
  t.ok(isRefusedPeer(refused), `403 forbidden_peer before allow (got ${refused.status})`);
  t.notMatch(refused.body, /AccessKeyId|SecretAccessKey/);

  // allow --user: served, with this workspace's token, on this workspace's routes only.
  await change(['workspace', 'allow', 'ws', '--user', USER]);
  const answers = await asUser([
    ['/v1/workspaces/ws/credentials', token],
    ['/v1/workspaces/ws/token', token],
    ['/v1/workspaces/other/credentials', otherToken],
    ['/v1/workspaces/other/credentials', token],
    ['/v1/workspaces/ws/credentials', otherToken],
    ['/v1/workspaces/ws/credentials', 'not-the-token'],
    ['/healthz', ''],
    ['/metrics', token],
    ['/v1/admin/status', token],
  ]);
  const [creds, apiKey, otherWs, otherWsOurToken, wrongToken, badToken, health, metrics, admin] = answers;
  t.equal(creds?.status, 200, 'credentials after allow --user');
  t.match(JSON.parse(creds?.body ?? '{}'), { AccessKeyId: String, SecretAccessKey: String, Token: String });
  t.equal(apiKey?.status, 200, 'the API key too');
  t.ok(otherWs && isRefusedPeer(otherWs), 'another workspace stays closed, even with its own token');
  t.ok(otherWsOurToken && isRefusedPeer(otherWsOurToken), 'and with this workspace token');
  t.equal(wrongToken?.status, 403, "another workspace's token does not open this one");
  t.match(wrongToken?.body, /"code":"forbidden"/);
  t.equal(badToken?.status, 401, 'a wrong token is still a wrong token');
  t.ok(health && isRefusedPeer(health), '/healthz is the daemon user alone');
  t.ok(metrics && isRefusedPeer(metrics), '/metrics too');
  t.equal(admin?.status, 404, 'the admin routes do not exist on TCP');
  t.match(daemon.output(), /"audit":true[^\n]*"msg":"workspace access changed: also allowed user credd-it-share/);

  // deny --user: refused again, whatever token the user kept.
  await change(['workspace', 'deny', 'ws', '--user', USER]);
  t.ok(isRefusedPeer(await credentials()), '403 again after deny');

  // Through a group the user is a member of (listed in /etc/group).
  throwawayGroup(t, GROUP);
  execFileSync('usermod', ['--append', '--groups', GROUP, USER]);
  t.ok(isRefusedPeer(await credentials()), 'a member of a group not yet allowed: 403');
  await change(['workspace', 'allow', 'ws', '--group', GROUP]);
  t.equal((await credentials()).status, 200, 'credentials after allow --group');
  await change(['workspace', 'deny', 'ws', '--group', GROUP]);
  t.ok(isRefusedPeer(await credentials()), '403 after deny --group');

  // A group allowed while the user is not in it yet: the daemon follows /etc/group as it changes.
  throwawayGroup(t, LATER_GROUP);
  await change(['workspace', 'allow', 'ws', '--group', LATER_GROUP]);
  t.ok(isRefusedPeer(await credentials()), 'not a member yet: 403');
  execFileSync('gpasswd', ['--add', USER, LATER_GROUP], { stdio: 'ignore' });
  // The daemon looks at the account files every 2 s at most; each refusal counts against the
  // user's 20 a minute, hence the slow poll.
  const served = await waitFor(async () => ((await credentials()).status === 200 ? true : null), 20_000, {
    what: 'the daemon to see the new member of the group',
    intervalMs: 1_000,
  });
  t.ok(served, 'served once added to the group, without a restart');

  // Removing the workspace removes its grants with it.
  t.equal((await runCli(home, ['workspace', 'remove', 'ws', '--keep-keys'])).code, 0);
  const afterRemove = await waitFor(
    async () => {
      const a = await credentials();
      return a.status === 200 ? null : a;
    },
    10_000,
    { intervalMs: 500 },
  );
  t.ok(isRefusedPeer(afterRemove), "a removed workspace is nobody else's either");

  const audit = daemon
    .output()
    .split('\n')
    .filter((l) => l.includes('"audit":true') && l.includes('not allowed'));
  t.ok(audit.length >= 1, 'refusals are in the audit trail');
  t.match(JSON.parse(audit[0] ?? '{}'), { uid: user.uid, code: 'forbidden_peer' });
  const handedOut = daemon
    .output()
    .split('\n')
    .filter((l) => l.includes('"audit":true') && l.includes('handed out'))
    .map((l) => JSON.parse(l) as { msg: string; uid: number | null });
  t.ok(
    handedOut.some((l) => l.msg === 'S3 credential handed out' && l.uid === user.uid),
    'the audit trail says which user got the credential',
  );
  t.ok(
    handedOut.some((l) => l.msg === 'API key handed out' && l.uid === user.uid),
    'and the API key',
  );
  t.notMatch(daemon.output(), token, 'the client token is never logged');
  await daemon.stop();
});
