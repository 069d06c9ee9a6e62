/**
 * The completion scripts: each parses in its shell (bash -n, zsh -n, fish -n, for every shell
 * installed), and bash and fish complete commands, subcommands, options, option values and the
 * workspace names from the database.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { CLI, makeHome, runCli, runProgram } from '../helpers/daemon.js';
import { requireTool } from '../helpers/tools.js';

const which = async (name: string) => {
  const out = await runProgram('/bin/sh', ['-c', `command -v ${name}`]);
  return out.code === 0 ? out.stdout.trim() : null;
};

const sim = await startHubSimulator({});
t.teardown(() => sim.close());
const home = makeHome(t);
{
  await runCli(home, ['init']);
  const hub = new HubSimulatorClient(sim.url);
  for (const ws of ['alpha-ws', 'beta-ws']) {
    const key = await hub.createKey(ws, { expiresDays: 30 });
    const added = await runCli(home, ['workspace', 'add', ws, '--hub', sim.url, '--token-id', key.id], {
      stdin: key.token,
    });
    if (added.code !== 0) throw new Error(added.stderr);
  }
}
// eodh-credd on PATH, as an installed package puts it: the scripts call it for workspace names.
const bin = join(home.root, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'eodh-credd'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
chmodSync(join(bin, 'eodh-credd'), 0o755);
const env = { ...home.env, PATH: `${bin}:${home.env.PATH}` };

const scripts: Record<string, string> = {};
for (const shell of ['bash', 'zsh', 'fish']) {
  const out = await runCli(home, ['completion', shell]);
  if (out.code !== 0) throw new Error(out.stderr);
  scripts[shell] = join(home.root, `completion.${shell}`);
  writeFileSync(scripts[shell]!, out.stdout);
}

for (const shell of ['bash', 'zsh', 'fish']) {
  t.test(`the ${shell} script parses in ${shell}`, async (t) => {
    const path = await which(shell);
    if (!requireTool(t, shell, path, `apt-get install ${shell}`)) return;
    const out = await runProgram(path, ['-n', scripts[shell]!]);
    t.equal(out.code, 0, `${shell} -n: ${out.stderr}`);
  });
}

t.test('an unknown shell is a usage error', async (t) => {
  t.equal((await runCli(home, ['completion', 'tcsh'])).code, 64);
});

/** What bash completes for the words typed so far (the last one being completed). */
async function bash(line: string): Promise<string[]> {
  const words = line.split(' ');
  const script = `source "$1"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _eodh_credd; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const out = await runProgram('/bin/bash', ['-c', script, 'bash', scripts.bash!], { env });
  return out.stdout.split('\n').filter(Boolean).sort();
}

t.test('bash completes commands, options, values and workspace names', async (t) => {
  t.same(await bash('eodh-credd st'), ['status']);
  t.same(await bash('eodh-credd workspace s'), ['set-key', 'sink']);
  t.same(await bash('eodh-credd env --f'), ['--format']);
  t.same(await bash('eodh-credd env --format d'), ['docker', 'dotenv']);
  t.same(await bash('eodh-credd env '), ['alpha-ws', 'beta-ws'], 'workspace names from the database');
  t.same(await bash('eodh-credd client-token rotate al'), ['alpha-ws']);
  t.same(await bash('eodh-credd --config /x token b'), ['beta-ws'], 'after a global option');
  t.same(await bash('eodh-credd completion z'), ['zsh']);
  t.same(
    await bash('eodh-credd workspace add x --'),
    ['--help', '--hub', '--region', '--revoke-pasted-key', '--token-id', '--config', '--no-color'].sort(),
  );
});

t.test('fish completes commands, options and workspace names', async (t) => {
  const fish = await which('fish');
  if (!requireTool(t, 'fish', fish, 'apt-get install fish')) return;
  const complete = async (line: string) => {
    const out = await runProgram(fish, ['-c', `source $argv[1]; complete -C '${line}'`, scripts.fish!], { env });
    return out.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[0]!)
      .sort();
  };
  t.same(await complete('eodh-credd stat'), ['status']);
  t.same(await complete('eodh-credd env '), ['alpha-ws', 'beta-ws']);
  t.same(await complete('eodh-credd workspace set'), ['set-key']);
  t.match(await complete('eodh-credd env alpha-ws --form'), ['--format']);
});
