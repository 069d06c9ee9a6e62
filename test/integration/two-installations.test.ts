/**
 * Two installations (separate data directories, separate daemons on their own ports) given the
 * same pasted API key — two machines, or a machine and a notebook — through 6 alternating
 * rotations (#11). Each mints its own key at `workspace add`, so neither ever cuts the other off:
 * after every rotation both serve working credentials, each has at most one live key of its own
 * on the hub, and the pasted key is never revoked by either.
 */
import t from 'tap';
import { startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient, type SimTokenInfo } from '../../src/hub-sim/client.js';
import { clientToken, type Home, makeHome, runCli, type StartedServe, startServe } from '../helpers/daemon.js';

const ROTATIONS = 6;
const WS = 'shared';

t.setTimeout(300_000);

/** The install id in a minted key's name ("eodh-credd <host> <install id> <workspace> <time>"). */
const installOf = (token: SimTokenInfo) => /^eodh-credd \S+ ([0-9a-f]+) /.exec(token.name)?.[1] ?? null;

t.test('two installations sharing one pasted key survive alternating rotations', async (t) => {
  const sim = await startHubSimulator({});
  t.teardown(() => sim.close());
  const hub = new HubSimulatorClient(sim.url);
  const pasted = await hub.createKey(WS, { expiresDays: 30, name: 'made in the web UI' });

  const homes: Home[] = [makeHome(t), makeHome(t)];
  const daemons: StartedServe[] = [];
  for (const home of homes) {
    t.equal((await runCli(home, ['init'])).code, 0, 'init');
    const added = await runCli(home, ['workspace', 'add', WS, '--hub', sim.url, '--token-id', pasted.id], {
      stdin: pasted.token,
    });
    t.equal(added.code, 0, added.stderr);
    t.match(added.stdout, /minted its own API key/, 'each installation mints its own key at once');
    t.match(added.stdout, /The key you pasted was not revoked/);
    daemons.push(await startServe(home, { t }));
  }
  t.not(daemons[0]!.url, daemons[1]!.url, 'two daemons on their own ports');

  /** Both daemons renew now against the hub (proving their keys work) and serve a credential. */
  const bothServe = async (when: string) => {
    for (const [i, home] of homes.entries()) {
      const refresh = await runCli(home, ['refresh', WS]);
      t.equal(refresh.code, 0, `installation ${i + 1} renews with its key ${when}`, { stderr: refresh.stderr });
      const answer = await fetch(`${daemons[i]!.url}/v1/workspaces/${WS}/credentials`, {
        headers: { authorization: clientToken(home, WS) },
      });
      t.equal(answer.status, 200, `installation ${i + 1} serves credentials ${when}`);
      await answer.body?.cancel();
    }
  };

  /** At most one live minted key per installation; the pasted key alive; no other key revoked. */
  const checkHub = async (when: string) => {
    const tokens = (await hub.tokens()).filter((k) => k.workspace === WS);
    const live = tokens.filter((k) => !k.revoked && !k.expired);
    const perInstall = new Map<string, number>();
    for (const k of live) {
      const install = installOf(k);
      if (install) perInstall.set(install, (perInstall.get(install) ?? 0) + 1);
    }
    t.equal(perInstall.size, 2, `both installations hold a live key of their own ${when}`);
    for (const [install, count] of perInstall) t.equal(count, 1, `installation ${install}: one live key ${when}`);
    t.ok(
      live.some((k) => k.id === pasted.id),
      `the pasted key is never revoked ${when}`,
    );
    return tokens;
  };

  await bothServe('after add');
  await checkHub('after add');
  const installs = new Set<string>();
  for (let round = 1; round <= ROTATIONS; round++) {
    const i = (round - 1) % 2;
    const rotated = await runCli(homes[i]!, ['rotate', WS]);
    t.equal(rotated.code, 0, `rotation ${round} by installation ${i + 1}`, { stderr: rotated.stderr });
    await bothServe(`after rotation ${round}`);
    for (const k of await checkHub(`after rotation ${round}`)) {
      const install = installOf(k);
      if (install) installs.add(install);
    }
  }
  t.equal(installs.size, 2, 'only the two installations ever minted');

  // No key was revoked by an installation that did not mint it: every revoked key carries the
  // install id of one of the two, and each installation revoked only keys with its own id (the
  // other's live key and the pasted one always survived, checked after every rotation above).
  const revoked = (await hub.tokens()).filter((k) => k.workspace === WS && k.revoked);
  t.equal(revoked.length, ROTATIONS, 'one key revoked per rotation: the rotating installation’s previous key');
  t.ok(
    revoked.every((k) => installOf(k) !== null),
    'only minted keys were ever revoked',
  );

  const status = await runCli(homes[1]!, ['status', '--json']);
  t.equal(status.code, 0, 'status: nothing needs attention', { stdout: status.stdout });
  t.match(JSON.parse(status.stdout), [
    { workspace: WS, apiKeyOrigin: 'minted', capabilities: { list: 'allowed', mint: 'allowed', delete: 'allowed' } },
  ]);
  for (const d of daemons) await d.stop();
});
