/**
 * The command line as a user meets it, through the built CLI: --help and `help <command>` for
 * every command print usage, options and an example and never run it (the data directory stays
 * byte-for-byte the same); --version; unknown commands, options and workspaces answer with "did you
 * mean"; every precondition is checked before a key is read; keys are trimmed.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { COMMANDS, type CommandSpec } from '../../src/cli/definitions.js';
import { startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { type Home, makeHome, runCli } from '../helpers/daemon.js';

/** Every file and directory under root with its mode and content digest. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isDirectory()) {
        out[path] = `dir ${st.mode}`;
        walk(path);
      } else out[path] = `${st.mode} ${createHash('sha256').update(readFileSync(path)).digest('hex')} ${st.mtimeMs}`;
    }
  };
  walk(root);
  return out;
}

function paths(specs: readonly CommandSpec[], prefix: string[] = []): string[][] {
  return specs.flatMap((s) => [
    [...prefix, s.name],
    ...(s.subcommands ? paths(s.subcommands, [...prefix, s.name]) : []),
  ]);
}

const sim = await startHubSimulator({});
t.teardown(() => sim.close());
const hub = new HubSimulatorClient(sim.url);

/** An installation with workspace my-ws, added with a key pasted with a space before it and CRLF after. */
async function initialised(): Promise<Home> {
  const home = makeHome(t);
  const init = await runCli(home, ['init']);
  if (init.code !== 0) throw new Error(`init: ${init.stderr}`);
  const key = await hub.createKey('my-ws', { expiresDays: 30 });
  const added = await runCli(home, ['workspace', 'add', 'my-ws', '--hub', sim.url, '--token-id', key.id], {
    stdin: ` ${key.token}\r\n`,
  });
  if (added.code !== 0) throw new Error(`a key with surrounding spaces and CRLF is trimmed: ${added.stderr}`);
  return home;
}

const home = await initialised();

t.test('--help and help <command>: usage, options and an example; nothing runs, nothing changes', async (t) => {
  const before = snapshot(home.root);
  for (const path of paths(COMMANDS)) {
    for (const args of [
      [...path, '--help'],
      ['help', ...path.slice(0, 1)],
    ]) {
      const out = await runCli(home, args);
      t.equal(out.code, 0, `${args.join(' ')} exits 0 (${out.stderr})`);
      t.match(out.stdout, /^Usage: eodh-credd /m, `${args.join(' ')}: usage`);
      t.match(out.stdout, /-h, --help/, `${args.join(' ')}: options`);
    }
    const spec = path.reduce<CommandSpec | undefined>(
      (found, name) => (found ? found.subcommands : COMMANDS)?.find((s) => s.name === name),
      undefined,
    );
    if (!spec?.subcommands) {
      const out = await runCli(home, [...path, '--help']);
      t.match(out.stdout, /\nExamples?:\n {2}\$ .*eodh-credd /, `${path.join(' ')}: an example`);
    }
  }
  t.same(snapshot(home.root), before, 'the home, data directory included, is byte-for-byte unchanged');
});

t.test('--help before init creates nothing', async (t) => {
  const fresh = makeHome(t);
  const before = snapshot(fresh.root);
  for (const args of [
    ['init', '--help'],
    ['serve', '--help'],
    ['workspace', 'list', '--help'],
    ['help', 'init'],
  ]) {
    t.equal((await runCli(fresh, args)).code, 0, args.join(' '));
  }
  t.same(snapshot(fresh.root), before);
  t.notOk(existsSync(fresh.paths.dataDir));
});

t.test('--version', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const out = await runCli(home, [flag]);
    t.equal(out.code, 0);
    t.equal(out.stdout.trim(), pkg.version);
  }
});

t.test('unknown commands and options: usage and "did you mean"', async (t) => {
  const command = await runCli(home, ['stauts']);
  t.equal(command.code, 64);
  t.match(command.stderr, /unknown command 'stauts'/);
  t.match(command.stderr, /Did you mean status\?/);
  t.match(command.stderr, /Usage: eodh-credd/);
  const sub = await runCli(home, ['workspace', 'lst']);
  t.match(sub.stderr, /Did you mean list\?/);
  const option = await runCli(home, ['env', 'my-ws', '--fromat', 'json']);
  t.equal(option.code, 64);
  t.match(option.stderr, /unknown option '--fromat'/);
  t.match(option.stderr, /Did you mean --format\?/);
  t.match(option.stderr, /Usage: eodh-credd env \[options\] <workspace>/);
  const choice = await runCli(home, ['env', 'my-ws', '--format', 'xml']);
  t.equal(choice.code, 64);
  t.match(choice.stderr, /Allowed choices are sh, fish, json, dotenv, docker/);
});

t.test('an unknown workspace: did you mean, from the database', async (t) => {
  for (const args of [
    ['env', 'my-wz'],
    ['aws-profile', 'my-sw'],
    ['token', 'my-wz'],
    ['credential-process', 'my-wz'],
    ['exec', 'my-wz', '--', 'true'],
  ]) {
    const out = await runCli(home, args);
    t.equal(out.code, 64, args.join(' '));
    t.match(out.stderr, /No workspace "my-(wz|sw)"\. Did you mean "my-ws"\?/, args.join(' '));
  }
  const far = await runCli(home, ['env', 'other']);
  t.match(far.stderr, /No workspace "other"\. Configured: my-ws\./);
});

t.test('every precondition is checked before the key is read', async (t) => {
  const fresh = makeHome(t);
  const noInit = await runCli(fresh, ['workspace', 'add', 'ws', '--hub', sim.url], { stdin: 'a-key' });
  t.equal(noInit.code, 78);
  t.match(noInit.stderr, /run "eodh-credd init" first/);
  // Empty input: had the key been read first, the answer would be "No key given".
  const taken = await runCli(home, ['workspace', 'add', 'my-ws', '--hub', sim.url], { stdin: '' });
  t.match(taken.stderr, /already configured/);
  const badName = await runCli(home, ['workspace', 'add', 'My_WS'], { stdin: '' });
  t.match(badName.stderr, /is not a workspace name/);
  const badHub = await runCli(home, ['workspace', 'add', 'ws2', '--hub', 'http://example.org'], { stdin: '' });
  t.equal(badHub.code, 78, badHub.stderr);
  t.notMatch(badHub.stderr, /No key given/);
  const setKey = await runCli(home, ['workspace', 'set-key', 'my-wz'], { stdin: '' });
  t.match(setKey.stderr, /Did you mean "my-ws"/);
});

t.test('keys: surrounding whitespace trimmed, inner whitespace refused', async (t) => {
  const key = await hub.createKey('my-ws', { expiresDays: 30 });
  const ok = await runCli(home, ['workspace', 'set-key', 'my-ws', '--token-id', key.id], {
    stdin: `\t${key.token} \r\n`,
  });
  t.equal(ok.code, 0, ok.stderr);
  const inner = await runCli(home, ['workspace', 'set-key', 'my-ws'], { stdin: 'two words\n' });
  t.equal(inner.code, 65);
});

t.test('no progress line in a pipe', async (t) => {
  const fresh = makeHome(t);
  await runCli(fresh, ['init']);
  const key = await hub.createKey('piped', { expiresDays: 30 });
  const out = await runCli(fresh, ['workspace', 'add', 'piped', '--hub', sim.url, '--token-id', key.id], {
    stdin: key.token,
  });
  t.equal(out.code, 0, out.stderr);
  t.notMatch(out.stderr, /Checking|\u001b/, 'nothing but the answer');
});

t.test('workspace list --names (what the completions call)', async (t) => {
  const out = await runCli(home, ['workspace', 'list', '--names']);
  t.equal(out.stdout, 'my-ws\n');
});
