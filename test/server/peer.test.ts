/**
 * The peer's uid (#12). The table parsing against rows as the kernel prints them; then the real
 * daemon and a real second user (a throw-away account, created here as root): the stolen client
 * token used from that user's processes gets 403 and nothing else, and that user cannot stand in
 * for the daemon on the IPv6 loopback twin while it runs.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { startHubSimulator } from '../../src/hub-sim/index.js';
import { endpointHex, lookupPeerUid, uidFromTable } from '../../src/server/peer.js';
import { clientToken, makeHome, runCli, runProgram, startServe } from '../helpers/daemon.js';

t.test('endpoints as /proc/net/tcp{,6} print them (little-endian words)', async (t) => {
  t.equal(endpointHex('127.0.0.1', 9460), '0100007F:24F4');
  t.equal(endpointHex('127.1.2.3', 1), '0302017F:0001');
  t.equal(endpointHex('::1', 9460), '00000000000000000000000001000000:24F4');
  t.equal(endpointHex('::ffff:127.0.0.1', 80), '0000000000000000FFFF00000100007F:0050');
});

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:24F4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:24F4 06 00000000:00000000 03:00001000 00000000     0        0 0 3 0000000000000000
   2: 0100007F:C350 0100007F:24F4 01 00000000:00000000 00:00000000 00000000  1001        0 2222 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:24F4 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 20 4 30 10 -1
`;

t.test('the client row: its end first, ours second; rows without an owner skipped', async (t) => {
  t.equal(uidFromTable(TABLE, '0100007F:C350', '0100007F:24F4'), 1001, 'the TIME_WAIT row (inode 0) is passed over');
  t.equal(uidFromTable(TABLE, '0100007F:C351', '0100007F:24F4'), null, 'no such connection');
  const ends = { remoteAddress: '127.0.0.1', remotePort: 0xc350, localAddress: '127.0.0.1', localPort: 9460 };
  t.equal(await lookupPeerUid(ends, async (file) => (file === '/proc/net/tcp' ? TABLE : '')), 1001);
  t.equal(
    await lookupPeerUid({ ...ends, remoteAddress: '::ffff:127.0.0.1', localAddress: '::ffff:127.0.0.1' }, async (f) =>
      f === '/proc/net/tcp' ? TABLE : '',
    ),
    1001,
    'a dual-stack listener: the IPv4 client is found in the IPv4 table',
  );
  t.equal(await lookupPeerUid({ remoteAddress: '127.0.0.1' }, async () => TABLE), null, 'ends unknown: null');
});

const USER = 'credd-srv-peer';
const canSwitchUser = process.getuid?.() === 0 ? false : 'needs root to create a second user';

t.test('a stolen client token is worth nothing to another user', { skip: canSwitchUser }, async (t) => {
  execFileSync('sh', [
    '-c',
    `userdel ${USER} 2>/dev/null; useradd --system --no-create-home --shell /usr/sbin/nologin ${USER}`,
  ]);
  t.teardown(() => execFileSync('userdel', [USER]));

  const hub = await startHubSimulator({ s3LifetimeSeconds: 3600 });
  t.teardown(() => hub.close());
  const key = await new HubSimulatorClient(hub.url).createKey('ws', { expiresDays: 30 });
  const home = makeHome(t, { config: '[server]\nport = 0\n' });
  t.equal((await runCli(home, ['init'])).code, 0);
  const added = await runCli(home, ['workspace', 'add', 'ws', '--hub', hub.url, '--token-id', key.id], {
    stdin: key.token,
  });
  t.equal(added.code, 0, added.stderr);
  const daemon = await startServe(home, { t });
  const token = clientToken(home, 'ws');
  const port = Number(new URL(daemon.url).port);

  /** A script run by the other user: its stdout is what it saw. */
  const asOtherUser = (script: string) =>
    runProgram('setpriv', [
      `--reuid=${USER}`,
      `--regid=${USER}`,
      '--clear-groups',
      process.execPath,
      '--input-type=module',
      '-e',
      script,
    ]);

  const attack = await asOtherUser(`
    const out = [];
    for (const [host, path] of [['127.0.0.1', '/v1/workspaces/ws/credentials'], ['127.0.0.1', '/v1/workspaces/ws/token'], ['[::1]', '/v1/workspaces/ws/credentials'], ['127.0.0.1', '/healthz']]) {
      const r = await fetch('http://' + host + ':${port}' + path, { headers: { authorization: ${JSON.stringify(token)} } });
      out.push({ host, path, status: r.status, body: await r.text() });
    }
    console.log(JSON.stringify(out));
  `);
  t.equal(attack.code, 0, attack.stderr);
  const answers = JSON.parse(attack.stdout) as Array<{ host: string; path: string; status: number; body: string }>;
  t.equal(answers.length, 4);
  for (const a of answers) {
    t.equal(a.status, 403, `${a.host} ${a.path}: 403`);
    t.match(JSON.parse(a.body), { code: 'forbidden_peer' });
    t.notMatch(a.body, /SecretAccessKey|AccessKeyId|token"/, `${a.path}: nothing handed out`);
    t.notMatch(a.body, key.token);
  }

  const squat = await asOtherUser(`
    import { createServer } from 'node:net';
    const tries = [['::1', ${port}], ['127.0.0.1', ${port}]];
    const out = [];
    for (const [host, port] of tries) {
      out.push(await new Promise((resolve) => {
        const s = createServer();
        s.once('error', (e) => resolve(host + ' ' + e.code));
        s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(host + ' bound')));
      }));
    }
    console.log(JSON.stringify(out));
  `);
  t.same(
    JSON.parse(squat.stdout),
    ['::1 EADDRINUSE', '127.0.0.1 EADDRINUSE'],
    'neither loopback address can be squatted',
  );

  // The daemon's own user, with the same token, is served: the refusals were about the user.
  const mine = await fetch(`${daemon.url}/v1/workspaces/ws/credentials`, { headers: { authorization: token } });
  t.equal(mine.status, 200);
  const uid = Number(execFileSync('id', ['-u', USER]).toString().trim());
  const refusals = daemon
    .output()
    .split('\n')
    .filter((l) => l.includes('"audit":true') && l.includes('not allowed'));
  t.ok(refusals.length >= 1, 'the refusal is in the audit trail');
  t.match(JSON.parse(refusals[0] ?? '{}'), { uid, code: 'forbidden_peer' });
  t.notMatch(daemon.output(), token, 'the stolen token is not logged');
  await daemon.stop();
});
