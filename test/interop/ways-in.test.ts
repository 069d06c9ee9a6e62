/**
 * The other ways in, against the real daemon: the API key for scripts (GET /v1/workspaces/{ws}/token,
 * `eodh-credd token`, and a Python urllib script as the README shows it), every `eodh-credd env`
 * format, `credential-process` (its document, and a clear failure when the daemon is down) and
 * the stanza `aws-profile` prints.
 */

import { join } from 'node:path';
import t from 'tap';
import { CLI, runCli, runProgram } from '../helpers/daemon.js';
import { startInterop } from '../helpers/interop.js';
import { python as findPython, HINTS, requireTool } from '../helpers/tools.js';

const world = await startInterop(t);
const WS = world.workspace;

/** Reads the token like the README's example, then the API key from the daemon. */
const URLLIB = `
import json, pathlib, sys, urllib.error, urllib.request
token_file, url = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, headers={"Authorization": pathlib.Path(token_file).read_text()})
try:
    print(json.load(urllib.request.urlopen(req))["token"])
except urllib.error.HTTPError as e:
    print(f"HTTP {e.code}: {json.load(e)['message']}", file=sys.stderr)
    sys.exit(1)
`;

t.test('the API key for scripts', async (t) => {
  const url = `${world.daemon.url}/v1/workspaces/${WS}/token`;

  t.test('GET /v1/workspaces/{ws}/token', async (t) => {
    const res = await fetch(url, { headers: { authorization: world.token() } });
    t.equal(res.status, 200);
    t.match(await res.json(), { workspace: WS, token: world.apiKey(), tokenId: String, expiry: String });
    const refused = await fetch(url, { headers: { authorization: 'not-the-token' } });
    t.equal(refused.status, 401, 'a wrong client token is refused');
    await refused.body?.cancel();
  });

  t.test('eodh-credd token <ws>', async (t) => {
    const out = await runCli(world.home, ['token', WS]);
    t.equal(out.code, 0, out.stderr);
    t.equal(out.stdout, `${world.apiKey()}\n`, 'the bare key, one line');
  });

  t.test('a Python script with urllib', async (t) => {
    const python = findPython();
    if (!requireTool(t, 'python3', python, HINTS.boto3)) return;
    const env = await world.clientEnv();
    const out = await runProgram(python, ['-c', URLLIB, world.tokenFile(), url], { env });
    t.equal(out.code, 0, out.stderr);
    t.equal(out.stdout.trim(), world.apiKey(), 'the script got the workspace API key');
    const wrong = join(world.scratch('wrong'), 'token');
    await runProgram('/bin/sh', ['-c', 'printf %s wrong-token > "$1"', 'sh', wrong], { env });
    const refused = await runProgram(python, ['-c', URLLIB, wrong, url], { env });
    t.equal(refused.code, 1);
    t.match(refused.stderr, /^HTTP 401: /, 'with a wrong token: 401 and the reason');
  });
});

t.test('eodh-credd env --format', async (t) => {
  const json = await world.daemonEnv();
  t.same(Object.keys(json).sort(), [
    'AWS_CONTAINER_AUTHORIZATION_TOKEN',
    'AWS_CONTAINER_CREDENTIALS_FULL_URI',
    'AWS_DEFAULT_REGION',
    'AWS_REGION',
    'EODH_S3_BUCKET',
    'EODH_S3_PREFIX',
  ]);
  t.equal(json.AWS_CONTAINER_CREDENTIALS_FULL_URI, `${world.daemon.url}/v1/workspaces/${WS}/credentials`);
  t.equal(json.AWS_CONTAINER_AUTHORIZATION_TOKEN, world.token());
  t.equal(json.AWS_REGION, world.moto.region);

  t.test('sh: eval in bash sets the variables', async (t) => {
    const script = `eval "$("$NODE" "$CLI" env "$WS" --format sh)"; for v in ${Object.keys(json).join(' ')}; do printf '%s=%s\\n' "$v" "\${!v}"; done`;
    const out = await runProgram('/bin/bash', ['-c', script], {
      env: { ...world.home.env, NODE: process.execPath, CLI, WS },
    });
    t.equal(out.code, 0, out.stderr);
    t.same(
      Object.fromEntries(
        out.stdout
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      ),
      json,
    );
  });

  t.test('fish: one set -gx per variable', async (t) => {
    const out = await runCli(world.home, ['env', WS, '--format', 'fish']);
    t.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split('\n');
    t.same(
      lines,
      Object.entries(json).map(([k, v]) => `set -gx ${k} ${v};`),
    );
  });

  t.test('json: an object of the variables', async (t) => {
    const out = await runCli(world.home, ['env', WS, '--format', 'json']);
    t.same(JSON.parse(out.stdout), json);
  });

  t.test('dotenv: KEY="value" lines', async (t) => {
    const out = await runCli(world.home, ['env', WS, '--format', 'dotenv']);
    t.equal(out.code, 0, out.stderr);
    const parsed = Object.fromEntries(
      out.stdout
        .trim()
        .split('\n')
        .map((line) => {
          const m = /^([A-Z0-9_]+)=(".*")$/.exec(line);
          if (!m) throw new Error(`not a dotenv line: ${line}`);
          return [m[1]!, JSON.parse(m[2]!) as string];
        }),
    );
    t.same(parsed, json);
  });

  t.test('docker: host network, the token file mounted read-only, the variable naming the mount', async (t) => {
    const out = await runCli(world.home, ['env', WS, '--format', 'docker']);
    t.equal(out.code, 0, out.stderr);
    const flags = out.stdout.trim().split(' ');
    t.ok(flags.includes('--network=host'), "--network=host (127.0.0.1 inside is the host's loopback)");
    const volume = flags.find((f) => f.startsWith('--volume='));
    const [source, inside, mode] = (volume ?? '').slice('--volume='.length).split(':');
    t.equal(source, world.tokenFile(), 'the token file is the volume');
    t.equal(mode, 'ro', 'read-only');
    t.ok(
      flags.includes(`--env=AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${inside}`),
      'the variable names the mounted path',
    );
    t.ok(flags.includes(`--env=AWS_CONTAINER_CREDENTIALS_FULL_URI=${json.AWS_CONTAINER_CREDENTIALS_FULL_URI}`));
  });
});

t.test('aws-profile prints a credential_process stanza with absolute paths', async (t) => {
  const out = await runCli(world.home, ['aws-profile', WS]);
  t.equal(out.code, 0, out.stderr);
  const lines = out.stdout
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('#'));
  t.same(lines, [
    `[profile eodh-${WS}-process]`,
    `credential_process = ${process.execPath} ${CLI} credential-process ${WS}`,
    `region = ${world.moto.region}`,
  ]);
  const named = await runCli(world.home, ['--config', world.home.configFile, 'aws-profile', WS, '--name', 'mine']);
  t.match(
    named.stdout,
    `[profile mine]\ncredential_process = ${process.execPath} ${CLI} --config ${world.home.configFile} credential-process ${WS}\n`,
  );
  const unknown = await runCli(world.home, ['aws-profile', 'nope']);
  t.not(unknown.code, 0);
  t.match(unknown.stderr, 'No workspace "nope"');
});

t.test('credential-process', async (t) => {
  const out = await runCli(world.home, ['credential-process', WS]);
  t.equal(out.code, 0, out.stderr);
  const doc = JSON.parse(out.stdout) as Record<string, unknown>;
  const served = await world.served();
  t.same(doc, {
    Version: 1,
    AccessKeyId: served.AccessKeyId,
    SecretAccessKey: served.SecretAccessKey,
    SessionToken: served.Token,
    Expiration: served.Expiration,
  });
  t.equal(out.stdout.split('\n').length, 2, 'one line of JSON');

  await world.daemon.stop();
  const down = await runCli(world.home, ['credential-process', WS]);
  t.not(down.code, 0, 'with the daemon down: a non-zero exit');
  t.equal(down.stdout, '', 'nothing on stdout');
  t.match(down.stderr, /daemon.*(not running|does not answer)/, 'and a reason on stderr');
  t.equal(down.stderr.trim().split('\n').length, 1, 'in one line');
});
