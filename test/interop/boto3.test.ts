/**
 * boto3 (the image's Python) against moto S3 with SigV4 enforced, credentials only from the
 * daemon: the script is a user's, unchanged (test/interop/clients/s3_roundtrip.py), and finds
 * everything in its environment. Every way of pointing it at the daemon: the token by file (what
 * `eodh-credd env` prints) and by value, 127.0.0.1 and localhost in the URI, and a profile in
 * ~/.aws/config whose credential_process is `eodh-credd credential-process`.
 *
 * Last, a long-lived boto3 session across several renewals. The hub is switched to 30-second
 * credentials (the renewal margins scale with the lifetime: renew at about half, never serve the
 * last 10 %), so botocore, which refreshes anything with under 15 minutes left, must come back to
 * the daemon and pick up each new key. moto does not enforce expiry, so the test checks it
 * itself: every request was signed with a key the daemon handed out, before that key's expiry,
 * and the session used at least three different keys with no failed call.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { runCli, runProgram } from '../helpers/daemon.js';
import { CONTAINER_ENDPOINT_CASES, type Interop, startInterop } from '../helpers/interop.js';
import { HINTS, pythonWithBoto3, requireTool, versionOf } from '../helpers/tools.js';

const SCRIPT = fileURLToPath(new URL('./clients/s3_roundtrip.py', import.meta.url));
const LONG_SESSION = fileURLToPath(new URL('./clients/long_session.py', import.meta.url));
const LIFETIME_S = 30;
const MIN_KEYS = 3;
/** Three keys need about two renewals, ~30 s; the bound leaves room for a loaded machine. */
const DEADLINE_S = 120;

interface RoundTrip {
  boto3: string;
  method: string;
  accessKeyId: string;
  roundTrip: boolean;
  listed: string[];
}

async function roundTrip(
  t: Test,
  python: string,
  world: Interop,
  prefix: string,
  env: Record<string, string>,
  profile?: string,
): Promise<RoundTrip | null> {
  const out = await runProgram(python, [SCRIPT, world.moto.bucket, prefix, ...(profile ? [profile] : [])], { env });
  if (!t.equal(out.code, 0, 'the script succeeds', { stderr: out.stderr })) return null;
  const result = JSON.parse(out.stdout) as RoundTrip;
  t.ok(result.roundTrip, 'what it put is what it got');
  t.same(result.listed, [`${prefix}/object.txt`], 'and it lists it');
  t.equal(
    await world.getObject(`${prefix}/object.txt`),
    `hello from boto3 ${result.boto3}`,
    'the object is in moto S3',
  );
  return result;
}

const python = pythonWithBoto3();
if (requireTool(t, 'boto3', python, HINTS.boto3)) {
  t.comment(
    `boto3: ${versionOf(python, ['-c', 'import boto3, botocore; print("boto3", boto3.__version__, "botocore", botocore.__version__)'])}`,
  );
  // A sweep every second, so that renewals of 30-second credentials happen on time.
  const world = await startInterop(t, {
    config: '[renewal]\nsweep_schedule = "* * * * * *"\nbackoff_initial_ms = 200\nbackoff_max_ms = 2000\n',
  });
  const endpoint = { AWS_ENDPOINT_URL_S3: world.moto.endpoint };

  for (const [name, options] of CONTAINER_ENDPOINT_CASES) {
    t.test(`container endpoint: ${name}`, async (t) => {
      const env = await world.clientEnv({ ...options, extra: endpoint });
      const prefix = `boto3-${options.token}-${options.host}`;
      const result = await roundTrip(t, python, world, prefix, env);
      if (!result) return;
      t.equal(result.method, 'container-role', 'botocore took the credentials from the container provider');
      t.equal(result.accessKeyId, (await world.served()).AccessKeyId, 'the access key is the one the daemon serves');
    });
  }

  t.test('Session(profile_name=…) with credential_process from `eodh-credd aws-profile`', async (t) => {
    const stanza = await runCli(world.home, ['aws-profile', world.workspace]);
    t.equal(stanza.code, 0, stanza.stderr);
    const config = join(world.home.root, '.aws', 'config');
    mkdirSync(dirname(config), { recursive: true });
    writeFileSync(config, stanza.stdout);
    // No container variables: only the profile can supply credentials.
    const env = await world.clientEnv();
    for (const k of Object.keys(env)) if (k.startsWith('AWS_CONTAINER_')) delete env[k];
    const result = await roundTrip(
      t,
      python,
      world,
      'boto3-profile',
      { ...env, ...endpoint },
      `eodh-${world.workspace}`,
    );
    if (!result) return;
    t.equal(result.method, 'custom-process', 'botocore ran the credential_process');
    t.equal(result.accessKeyId, (await world.served()).AccessKeyId, 'and got the credential the daemon serves');
  });

  /** Credential requests the daemon answered (its /metrics counter). */
  const servedCount = async (): Promise<number> => {
    const metricsToken = readFileSync(world.home.paths.metricsToken, 'utf8').trim();
    const metrics = await (
      await fetch(`${world.daemon.url}/metrics`, { headers: { authorization: metricsToken } })
    ).text();
    return Number(/^eodh_credd_credentials_served_total\{workspace="ws1"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
  };

  t.test(`one boto3 session keeps working across renewals of ${LIFETIME_S}-second credentials`, async (t) => {
    const servedBefore = await servedCount();
    await world.hub.settings({ s3LifetimeSeconds: LIFETIME_S });
    const refreshed = await runCli(world.home, ['refresh', world.workspace]);
    t.equal(refreshed.code, 0, 'the daemon now holds a 30-second credential', { stderr: refreshed.stderr });
    const env = await world.clientEnv({ extra: endpoint });
    const out = await runProgram(
      python,
      [LONG_SESSION, world.moto.bucket, 'long-session', String(MIN_KEYS), String(DEADLINE_S), '1'],
      {
        env,
        timeoutMs: (DEADLINE_S + 30) * 1000,
      },
    );
    if (!t.equal(out.code, 0, 'the program ran to its end', { stderr: out.stderr })) return;
    const result = JSON.parse(out.stdout) as { calls: Array<[number, string]>; errors: string[]; method: string };
    t.same(result.errors, [], 'no call failed');
    t.equal(result.method, 'container-role');
    const keys = [...new Set(result.calls.map(([, k]) => k))];
    t.ok(
      keys.length >= MIN_KEYS,
      `the session signed with ${keys.length} different access keys (at least ${MIN_KEYS})`,
    );

    // What the daemon handed out: its audit lines (last 4 characters of each key, and expiry).
    const audit = world.daemon
      .output()
      .split('\n')
      .flatMap((line) => {
        try {
          const entry = JSON.parse(line) as { msg?: string; accessKeyIdEnd?: string; expiresAt?: string };
          return entry.msg === 'S3 credential handed out' && entry.accessKeyIdEnd && entry.expiresAt
            ? [[entry.accessKeyIdEnd, Date.parse(entry.expiresAt)] as const]
            : [];
        } catch {
          return [];
        }
      });
    const expiryOf = new Map(audit);
    for (const key of keys) t.ok(expiryOf.has(key.slice(-4)), `key …${key.slice(-4)} was handed out by the daemon`);
    const late = result.calls.filter(([at, key]) => !(at < (expiryOf.get(key.slice(-4)) ?? 0)));
    t.same(late, [], 'every request was signed before its key expired');

    // botocore came back to the daemon for each new key: the daemon counted the fetches.
    const served = (await servedCount()) - servedBefore;
    t.ok(served >= keys.length, `the daemon served ${served} credential requests for ${result.calls.length} S3 calls`);
    t.comment(
      `${result.calls.length} S3 calls over ${Math.round((result.calls.at(-1)![0] - result.calls[0]![0]) / 1000)} s, ${keys.length} access keys, ${served} credential fetches`,
    );
  });
}
