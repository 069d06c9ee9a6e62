/**
 * A real run, start to finish, through the built CLI and a `serve` child logging at trace level;
 * then every place a secret must never be is searched for every secret value used: the database
 * and its WAL/SHM (while running and after stop), the daemon's whole log output, the argv of every
 * process started (/proc/<pid>/cmdline, read while each ran), every error body, and the CLI's
 * error output. Secrets: API keys, S3 secret keys and session tokens (every one served), client
 * tokens (before and after rotation), the admin token and the master key.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { rawExchange } from '../server/fixtures/live-app.js';
import { createInstallation } from './fixtures/installation.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('no secret in the database, its journal, the logs, any argv or any error body', async (t) => {
  const inst = await createInstallation(t, { setup: 'cli', logLevel: 'trace' });
  const alpha = await inst.addWorkspace('alpha');
  const beta = await inst.addWorkspace('beta');
  const daemon = await inst.serve();
  const { paths } = inst;

  const secrets = new Map<string, string>();
  const secret = (label: string, value: string) => {
    t.ok(value.length >= 16, `${label} is a real secret (${value.length} characters)`);
    secrets.set(label, value);
  };
  secret('alpha API key', alpha.apiKey);
  secret('beta API key', beta.apiKey);
  secret('alpha client token', alpha.clientToken);
  secret('beta client token', beta.clientToken);
  secret('master key', readFileSync(paths.masterKey, 'utf8').trim());
  secret('admin token', readFileSync(paths.adminToken, 'utf8').trim());

  const errorBodies: string[] = [];
  const cliErrors: string[] = [];
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${daemon.url}${path}`, { headers });
    const body = await response.text();
    if (response.status >= 400) errorBodies.push(body);
    return { status: response.status, body };
  };
  const served = async (workspace: string, token: string, round: string) => {
    const reply = await get(`/v1/workspaces/${workspace}/credentials`, { authorization: token });
    t.equal(reply.status, 200, `${workspace} served (${round})`);
    const json = JSON.parse(reply.body) as { SecretAccessKey: string; Token: string };
    secret(`${workspace} S3 secret (${round})`, json.SecretAccessKey);
    secret(`${workspace} session token (${round})`, json.Token);
  };

  // Normal use.
  await served('alpha', alpha.clientToken, 'first');
  await served('beta', beta.clientToken, 'first');
  t.equal((await get('/v1/workspaces/alpha/token', { authorization: alpha.clientToken })).status, 200);
  t.equal(
    (await get('/v1/admin/status', { authorization: secrets.get('admin token')! })).status,
    404,
    'the admin routes are not on TCP (the CLI reaches them over its socket)',
  );
  // `env` prints the client token by value by default (#15): that one secret is what it is for.
  const envByValue = await inst.cli(['env', 'alpha']);
  t.equal(envByValue.code, 0);
  const alphaClientToken = secrets.get('alpha client token') ?? '';
  t.ok(alphaClientToken && envByValue.stdout.includes(alphaClientToken), 'env prints the client token by value');
  const env = await inst.cli(['env', 'alpha', '--token', 'file']);
  t.equal(env.code, 0);
  t.equal((await inst.run(['status'])).code, 0);

  // A forced renewal: new S3 credentials to look for.
  const refresh = await inst.cli(['refresh', 'alpha']);
  t.equal(refresh.code, 0, refresh.stderr);
  await served('alpha', alpha.clientToken, 'renewed');

  // The hub failing: its errors travel to status, the logs and the admin route's error body.
  await inst.sim.setFault('error500', { count: 10 });
  const failed = await inst.cli(['refresh', 'beta']);
  t.not(failed.code, 0, 'refresh fails while the hub does');
  cliErrors.push(failed.stderr);
  await inst.sim.setFault('none');

  // A client token rotation: the old one is refused with an error body, the new one is a secret too.
  const rotated = await inst.cli(['client-token', 'rotate', 'beta']);
  t.equal(rotated.code, 0, rotated.stderr);
  const betaNew = readFileSync(join(paths.tokensDir, 'beta.token'), 'utf8');
  secret('beta client token (rotated)', betaNew);
  for (
    let i = 0;
    i < 60 && (await get('/v1/workspaces/beta/credentials', { authorization: beta.clientToken })).status !== 401;
    i++
  )
    await sleep(50);
  await served('beta', betaNew, 'after rotation');

  // Every kind of refusal, with bodies.
  const a = alpha.clientToken;
  const refusals: Array<[string, Record<string, string>]> = [
    ['/v1/workspaces/alpha/credentials', {}],
    ['/v1/workspaces/alpha/credentials', { authorization: 'wrong' }],
    ['/v1/workspaces/alpha/credentials', { authorization: `${a}x` }],
    ['/v1/workspaces/alpha/credentials', { authorization: betaNew }],
    ['/v1/workspaces/beta/token', { authorization: a }],
    ['/v1/workspaces/alpha/credentials', { authorization: a, origin: 'http://evil.example' }],
    ['/v1/workspaces/alpha/credentials', { authorization: a, 'sec-fetch-site': 'cross-site' }],
    ['/v1/workspaces/ALPHA/credentials', { authorization: a }],
    ['/v1/workspaces/%C0%AE/credentials', { authorization: a }],
    ['/v1/admin/status', { authorization: a }],
    ['/v1/nothing', { authorization: a }],
  ];
  for (const [path, headers] of refusals) {
    const reply = await get(path, headers);
    t.ok(reply.status >= 400 && reply.status < 500, `${path} ${Object.keys(headers).join(',')}: ${reply.status}`);
  }
  const host = new URL(daemon.url).host;
  for (const request of [
    `GET /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: evil.example\r\nAuthorization: ${a}\r\nConnection: close\r\n\r\n`,
    `POST /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${a}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`,
    `GET /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${a}\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n`,
    `GET /v1/workspaces/\xff/credentials HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${a}\r\n\r\n`,
    `GET /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${a}\r\nBad Header: x\r\n\r\n`,
    `TRACE /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${a}\r\nConnection: close\r\n\r\n`,
  ]) {
    errorBodies.push(await rawExchange(daemon.port, request));
  }
  for (const args of [['token', 'gamma'], ['rekey'], ['client-token', 'rotate', 'gamma'], ['env', '../alpha']]) {
    const run = await inst.run(args);
    t.not(run.code, 0, `${args.join(' ')} fails`);
    cliErrors.push(run.stderr + run.stdout);
  }
  const duplicate = await inst.cli(['workspace', 'add', 'alpha', '--hub', inst.hubUrl], { input: alpha.apiKey });
  t.not(duplicate.code, 0, 'adding alpha twice fails');
  cliErrors.push(duplicate.stderr + duplicate.stdout);

  // The store while the daemon runs (WAL and SHM exist), then after a clean stop.
  const storeFiles = () =>
    readdirSync(paths.dataDir)
      .filter((f) => f.startsWith('credd.db'))
      .map((f) => ({ name: f, bytes: readFileSync(join(paths.dataDir, f)) }));
  const running = storeFiles();
  t.ok(
    running.some((f) => f.name === 'credd.db-wal'),
    'the WAL was looked at',
  );
  await sleep(300);
  await daemon.stop();
  const stopped = storeFiles();
  const logs = daemon.output();
  t.match(logs, /"level":20/, 'the log ran below info (trace configured)');
  t.match(logs, /S3 credential handed out/, 'and saw the audit lines');

  const places: Array<[string, string | Buffer]> = [
    ...running.map((f): [string, Buffer] => [`${f.name} (running)`, f.bytes]),
    ...stopped.map((f): [string, Buffer] => [`${f.name} (stopped)`, f.bytes]),
    ['daemon log', logs],
    ...inst.cmdlines.map((c, i): [string, string] => [
      `argv of process ${i}: ${c.split(' ').slice(1, 4).join(' ')}`,
      c,
    ]),
    ...errorBodies.map((b, i): [string, string] => [`error body ${i}`, b]),
    ...cliErrors.map((b, i): [string, string] => [`CLI error output ${i}`, b]),
    ['env output (--token file)', env.stdout],
    ['env output (by value), less the client token', envByValue.stdout.replaceAll(alphaClientToken, '')],
    [
      'daemon.json',
      existsSync(join(paths.dataDir, 'daemon.json')) ? readFileSync(join(paths.dataDir, 'daemon.json')) : '',
    ],
  ];
  t.ok(inst.cmdlines.length >= 8, `${inst.cmdlines.length} processes' argv checked`);
  const unread = inst.cmdlines.filter((c) => !c.includes('main.js'));
  t.same(
    unread.map((c) => c.split(' ').slice(0, 4).join(' ')),
    [],
    'every argv was read while the process ran',
  );
  t.ok(errorBodies.length >= refusals.length, `${errorBodies.length} error bodies checked`);
  let found = 0;
  for (const [place, haystack] of places) {
    const bytes = typeof haystack === 'string' ? Buffer.from(haystack, 'latin1') : haystack;
    for (const [label, value] of secrets) {
      if (bytes.includes(Buffer.from(value, 'utf8'))) {
        found++;
        t.fail(`${label} found in ${place}`);
      }
    }
  }
  t.equal(found, 0, `${secrets.size} secrets × ${places.length} places: none found`);
});
