/**
 * A long-lived boto3 session across several renewals. The hub hands out 30-second credentials
 * (the renewal margins scale with the lifetime: renew at about half, never serve the last 10 %),
 * so botocore, which refreshes anything with under 15 minutes left, must come back to the daemon
 * and pick up each new key. moto does not enforce expiry, so the test checks it itself: every
 * request was signed with a key the daemon handed out, before that key's expiry, and the session
 * used at least three different keys with no failed call.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProgram } from '../helpers/daemon.js';
import { startInterop } from '../helpers/interop.js';
import { HINTS, pythonWithBoto3, requireTool } from '../helpers/tools.js';

const SCRIPT = fileURLToPath(new URL('./clients/long_session.py', import.meta.url));
const LIFETIME_S = 30;
const MIN_KEYS = 3;
/** Three keys need about two renewals, ~30 s; the bound leaves room for a loaded machine. */
const DEADLINE_S = 120;

const python = pythonWithBoto3();
if (requireTool(t, 'boto3', python, HINTS.boto3)) {
  const world = await startInterop(t, {
    s3LifetimeSeconds: LIFETIME_S,
    config: '[renewal]\nsweep_schedule = "* * * * * *"\nbackoff_initial_ms = 200\nbackoff_max_ms = 2000\n',
  });

  t.test(`one boto3 session keeps working across renewals of ${LIFETIME_S}-second credentials`, async (t) => {
    const env = await world.clientEnv({ extra: { AWS_ENDPOINT_URL_S3: world.moto.endpoint } });
    const out = await runProgram(python, [SCRIPT, world.moto.bucket, 'long-session', String(MIN_KEYS), String(DEADLINE_S), '1'], {
      env,
      timeoutMs: (DEADLINE_S + 30) * 1000,
    });
    if (!t.equal(out.code, 0, 'the program ran to its end', { stderr: out.stderr })) return;
    const result = JSON.parse(out.stdout) as { calls: Array<[number, string]>; errors: string[]; method: string };
    t.same(result.errors, [], 'no call failed');
    t.equal(result.method, 'container-role');
    const keys = [...new Set(result.calls.map(([, k]) => k))];
    t.ok(keys.length >= MIN_KEYS, `the session signed with ${keys.length} different access keys (at least ${MIN_KEYS})`);

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
    const adminToken = readFileSync(world.home.paths.adminToken, 'utf8').trim();
    const metrics = await (await fetch(`${world.daemon.url}/metrics`, { headers: { authorization: adminToken } })).text();
    const served = Number(/^eodh_credd_credentials_served_total\{workspace="ws1"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    t.ok(served >= keys.length, `the daemon served ${served} credential requests for ${result.calls.length} S3 calls`);
    t.comment(`${result.calls.length} S3 calls over ${Math.round((result.calls.at(-1)![0] - result.calls[0]![0]) / 1000)} s, ${keys.length} access keys, ${served} credential fetches`);
  });
}
