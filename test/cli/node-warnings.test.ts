/**
 * On a supported Node (package.json `engines`: 22 LTS from 22.12, 24 LTS and later), no command
 * prints a warning: no deprecation, experimental or version warning from Node or a dependency
 * (the AWS SDK prints a 9-line NodeVersionSupportWarning on Node 20, #16). Every command runs as
 * a user runs it, from the build, and its stderr is checked; `serve` with STS verification on, so
 * that the AWS SDK is loaded and used.
 *
 * On an unsupported Node (the CI machine's Node 20) the same commands run and one warning is
 * expected, the AWS SDK's NodeVersionSupportWarning; anything else on stderr that looks like a
 * warning fails there too.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { clientToken, makeHome, runCli, spawnCli, startServe } from '../helpers/daemon.js';

const ENGINES = '^22.12.0 || >=24';

/** Whether `version` (process.version) satisfies ENGINES. */
export function supportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return (major === 22 && minor >= 12) || major >= 24;
}

/** What Node prints for process.emitWarning ("(node:123) DeprecationWarning: …") or a dependency's own warning. */
const WARNING = /\(node:\d+\)|\b\w*Warning\b|EBADENGINE/;

const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  engines: { node: string };
};

t.test('engines in package.json is the range this file checks against', async (t) => {
  t.equal(manifest.engines.node, ENGINES);
  t.ok(supportedNode('v22.12.0') && supportedNode('v24.0.0') && supportedNode('v25.1.0'));
  t.notOk(supportedNode('v20.20.2') || supportedNode('v22.11.0') || supportedNode('v23.11.0'));
});

/** The AWS SDK's warning on a Node outside its support (#16), block and all. */
const SDK_NODE_WARNING =
  /\(node:\d+\) Warning: NodeVersionSupportWarning:[\s\S]*?\(Use `node --trace-warnings \.\.\.` to show where the warning was created\)\n?/g;

/** stderr less the warnings expected on this Node: none on a supported one. */
export function unexpectedOutput(stderr: string, version = process.version): string {
  return supportedNode(version) ? stderr : stderr.replace(SDK_NODE_WARNING, '');
}

t.test('the one warning expected on an unsupported Node is recognised, and only that one', async (t) => {
  const sdk = [
    '(node:10314) Warning: NodeVersionSupportWarning: The AWS SDK for JavaScript (v3)',
    'will require node >=22. You are running node v20.20.2.',
    '(Use `node --trace-warnings ...` to show where the warning was created)',
    '',
  ].join('\n');
  const other = '(node:10314) [DEP0040] DeprecationWarning: The `punycode` module is deprecated.\n';
  t.equal(unexpectedOutput(sdk, 'v20.20.2'), '');
  t.equal(unexpectedOutput(sdk + other, 'v20.20.2'), other);
  t.equal(unexpectedOutput(sdk, 'v24.0.0'), sdk, 'on a supported Node it is unexpected too');
});

t.test(`no command prints a warning on this Node (${process.version})`, async (t) => {
  t.setTimeout(240_000);
  // STS verification on, against a closed port: the AWS SDK client is built on every renewal.
  const home = makeHome(t, { config: '[sts]\nverify = true\nendpoint = "http://127.0.0.1:9"\ntimeout_ms = 500\n' });
  const clean = (what: string, stderr: string) =>
    t.notMatch(unexpectedOutput(stderr), WARNING, `${what}: nothing on stderr looks like a warning`, { stderr });
  const cli = async (args: string[], stdin?: string) => {
    const result = await runCli(home, args, stdin === undefined ? {} : { stdin });
    t.equal(result.code, 0, `${args.join(' ')} exits 0`, { stderr: result.stderr });
    clean(args.join(' '), result.stderr);
    return result;
  };

  await cli(['help']);
  await cli(['init']);

  const sim = spawnCli(home, ['hub-sim', '--port', '0'], t);
  const simErr = collect(sim, 'stderr');
  const simUrl = await firstMatch(sim, /http:\/\/\S+/);
  const key = await new HubSimulatorClient(simUrl).createKey('ws', { expiresDays: 30 });
  await cli(['workspace', 'add', 'ws', '--hub', simUrl, '--token-id', key.id], key.token);
  await cli(['workspace', 'list']);

  const daemon = await startServe(home, { t });
  const credentials = await fetch(`${daemon.url}/v1/workspaces/ws/credentials`, {
    headers: { authorization: clientToken(home, 'ws') },
  });
  t.equal(credentials.status, 200, 'the daemon serves the credential');
  await credentials.body?.cancel();
  for (const args of [
    ['refresh', 'ws'],
    ['status'],
    ['env', 'ws'],
    ['token', 'ws'],
    ['credential-process', 'ws'],
    ['aws-profile', 'ws'],
    ['install-systemd', '--user', '--dry-run'],
  ])
    await cli(args);
  const doctor = await runCli(home, ['doctor']);
  clean('doctor', doctor.stderr); // it exits 1 here (no unit installed): only its stderr matters
  await daemon.stop();
  clean('serve', daemon.output());

  const demo = spawnCli(home, ['demo'], t);
  const demoErr = collect(demo, 'stderr');
  await firstMatch(demo, /Ctrl-C/, 'stderr');
  demo.kill('SIGINT');
  await once(demo, 'close');
  clean('demo', demoErr());

  sim.kill('SIGTERM');
  await once(sim, 'close');
  clean('hub-sim', simErr());
});

function collect(child: ChildProcess, stream: 'stdout' | 'stderr'): () => string {
  let text = '';
  child[stream]!.setEncoding('utf8').on('data', (d: string) => (text += d));
  return () => text;
}

/** The first match of `pattern` in what the child writes on `stream`; rejects if it exits first. */
function firstMatch(child: ChildProcess, pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer | string) => {
      text += d.toString();
      const match = pattern.exec(text);
      if (match) {
        child[stream]!.off('data', onData);
        child.off('exit', onExit);
        resolve(match[0]);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`exited (${code}) before printing ${pattern}: ${text}`));
    child[stream]!.on('data', onData);
    child.once('exit', onExit);
  });
}
