// Proves that the moto harness is a faithful enough AWS: real STS credentials that work for the
// JS SDK and boto3, and SigV4 + IAM really enforced. Also pins what moto does NOT enforce
// (expiry, DurationSeconds bounds, clock skew), so a moto upgrade that changes it is noticed.

import { spawn } from 'node:child_process';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import t, { type Test } from 'tap';
import { type Moto, startMoto } from './moto.js';
import { HINTS, motoServer, requireTool } from './tools.js';

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
type StsCredentials = { AccessKeyId: string; SecretAccessKey: string; SessionToken: string; Expiration: Date };

function sts(moto: Moto, credentials: Creds): STSClient {
  return new STSClient({ endpoint: moto.endpoint, region: moto.region, credentials, maxAttempts: 1 });
}

function s3(moto: Moto, credentials: Creds, extra: { systemClockOffset?: number } = {}): S3Client {
  return new S3Client({
    endpoint: moto.endpoint,
    region: moto.region,
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
    ...extra,
  });
}

async function assume(moto: Moto, durationSeconds?: number): Promise<StsCredentials> {
  const out = await sts(moto, moto.baseCredentials).send(
    new AssumeRoleCommand({ RoleArn: moto.roleArn, RoleSessionName: 'ws1-alice', DurationSeconds: durationSeconds }),
  );
  const c = out.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) throw new Error('no credentials');
  return {
    AccessKeyId: c.AccessKeyId,
    SecretAccessKey: c.SecretAccessKey,
    SessionToken: c.SessionToken,
    Expiration: c.Expiration,
  };
}

/** AssumeRole, bracketed by the wall clock: moto's Expiration must lie between the two readings. */
async function assumeBracketed(t: Test, moto: Moto, durationSeconds: number | undefined, expectSeconds: number) {
  const before = Date.now();
  const c = await assume(moto, durationSeconds);
  const after = Date.now();
  // moto writes Expiration to the second: allow for the truncation below `before`.
  const low = before - 1_000 + expectSeconds * 1_000;
  const high = after + expectSeconds * 1_000;
  const at = c.Expiration.getTime();
  t.ok(at >= low && at <= high, `Expiration is ${expectSeconds} s after the call (${at - before} ms after its start)`);
  return c;
}

const asCreds = (c: StsCredentials): Creds => ({
  accessKeyId: c.AccessKeyId,
  secretAccessKey: c.SecretAccessKey,
  sessionToken: c.SessionToken,
});

/** What an SDK call failed with: error name and HTTP status (or 'ok'). */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const out = (await p) as { Body?: { transformToString(): Promise<string> } };
    // Drain a GetObject body: left open, it errors ("aborted") when moto stops.
    await out.Body?.transformToString();
    return 'ok';
  } catch (e) {
    const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
    return `${err.name} ${err.$metadata?.httpStatusCode}`;
  }
}

/** boto3 in a subprocess, credentials only from the environment, like a user's script. */
const BOTO3 = `
import os, sys, boto3
endpoint, bucket, key = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-2")
s3.put_object(Bucket=bucket, Key=key, Body=b"written by boto3")
print(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
print(s3.get_object(Bucket=bucket, Key="ws1/from-js.txt")["Body"].read().decode())
`;

function boto3(moto: Moto, c: Creds, key: string): Promise<{ code: number | null; out: string; err: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
  Object.assign(env, {
    AWS_ACCESS_KEY_ID: c.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
    AWS_SESSION_TOKEN: c.sessionToken ?? '',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  });
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-c', BOTO3, moto.endpoint, moto.bucket, key], { env });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

t.test('moto harness', async (t) => {
  if (!requireTool(t, 'moto_server', motoServer(), HINTS.moto)) return;
  const started = Date.now();
  const moto = await startMoto(t);
  t.comment(`startMoto took ${Date.now() - started} ms`);

  t.match(moto, {
    endpoint: /^http:\/\/127\.0\.0\.1:\d+$/,
    region: 'eu-west-2',
    bucket: 'workspaces-eodhp',
    baseCredentials: { accessKeyId: /^AKIA/, secretAccessKey: /.{20,}/ },
    roleArn: `arn:aws:iam::${moto.accountId}:role/eodh-workspace-s3`,
    accountId: /^\d{12}$/,
  });

  t.test('(a) AssumeRole credentials work for the JS SDK and for boto3', async (t) => {
    const c = await assumeBracketed(t, moto, undefined, 3600);
    t.match(c.AccessKeyId, /^ASIA/);

    const client = s3(moto, asCreds(c));
    await client.send(new PutObjectCommand({ Bucket: moto.bucket, Key: 'ws1/from-js.txt', Body: 'written by js' }));
    const got = await client.send(new GetObjectCommand({ Bucket: moto.bucket, Key: 'ws1/from-js.txt' }));
    t.equal(await got.Body?.transformToString(), 'written by js', 'JS SDK PutObject/GetObject');

    const py = await boto3(moto, asCreds(c), 'ws1/from-boto3.txt');
    t.equal(py.code, 0, py.err);
    t.equal(py.out, 'written by boto3\nwritten by js\n', 'boto3 put/get, and reads what JS wrote');
    const back = await client.send(new GetObjectCommand({ Bucket: moto.bucket, Key: 'ws1/from-boto3.txt' }));
    t.equal(await back.Body?.transformToString(), 'written by boto3', 'JS reads what boto3 wrote');
  });

  t.test('(b) signatures and IAM policies are enforced', async (t) => {
    const c = asCreds(await assume(moto));
    const get = (cl: S3Client) => cl.send(new GetObjectCommand({ Bucket: moto.bucket, Key: 'ws1/from-js.txt' }));
    const put = (cl: S3Client) => cl.send(new PutObjectCommand({ Bucket: moto.bucket, Key: 'ws1/x.txt', Body: 'x' }));

    const madeUp = { accessKeyId: 'AKIAMADEUPMADEUP1234', secretAccessKey: 'nope' };
    t.equal(await outcome(get(s3(moto, madeUp))), 'InvalidAccessKeyId 403', 'S3: made-up key');
    t.equal(await outcome(put(s3(moto, madeUp))), 'InvalidAccessKeyId 403', 'S3 put: made-up key');
    t.equal(
      await outcome(get(s3(moto, { ...madeUp, accessKeyId: 'ASIAMADEUPMADEUP1234', sessionToken: 'x' }))),
      'InvalidAccessKeyId 403',
      'S3: made-up session key',
    );
    t.equal(
      await outcome(get(s3(moto, { ...c, secretAccessKey: `${c.secretAccessKey}x` }))),
      'SignatureDoesNotMatch 403',
      'S3: right assumed-role key, wrong secret',
    );
    t.equal(
      await outcome(put(s3(moto, { ...c, secretAccessKey: `${c.secretAccessKey}x` }))),
      'SignatureDoesNotMatch 403',
      'S3 put: wrong secret',
    );
    t.equal(
      await outcome(get(s3(moto, { ...c, sessionToken: 'forged' }))),
      'InvalidToken 400',
      'S3: wrong session token',
    );

    t.equal(
      await outcome(sts(moto, madeUp).send(new GetCallerIdentityCommand({}))),
      'InvalidClientTokenId 403',
      'STS: made-up key',
    );
    const wrongBase = { ...moto.baseCredentials, secretAccessKey: 'wrong' };
    t.equal(
      await outcome(sts(moto, wrongBase).send(new AssumeRoleCommand({ RoleArn: moto.roleArn, RoleSessionName: 'x1' }))),
      'SignatureDoesNotMatch 403',
      'STS AssumeRole: right base key, wrong secret',
    );

    // Policies, not just signatures: the user may only assume the role; the role only has the bucket.
    t.equal(await outcome(get(s3(moto, moto.baseCredentials))), 'AccessDenied 403', 'base user has no S3 access');
    t.equal(
      await outcome(s3(moto, c).send(new GetObjectCommand({ Bucket: 'some-other-bucket', Key: 'k' }))),
      'AccessDenied 403',
      'role has no access outside its bucket',
    );
    t.equal(
      await outcome(
        sts(moto, moto.baseCredentials).send(
          new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${moto.accountId}:role/not-ours`, RoleSessionName: 'x1' }),
        ),
      ),
      'AccessDenied 403',
      'user cannot assume another role',
    );
  });

  t.test('(c) GetCallerIdentity with assumed-role credentials', async (t) => {
    const id = await sts(moto, asCreds(await assume(moto))).send(new GetCallerIdentityCommand({}));
    t.equal(id.Account, moto.accountId);
    t.equal(id.Arn, `arn:aws:sts::${moto.accountId}:assumed-role/eodh-workspace-s3/ws1-alice`);
  });

  // (d) Findings, moto 5.2.1:
  //  - DurationSeconds has no lower (or upper) bound in moto: 1, 60 and 120 are accepted and the
  //    Expiration is now + DurationSeconds. (AWS: 900 minimum. The JS SDK does not check it;
  //    boto3 refuses < 900 client-side unless parameter_validation=False.)
  //  - Expiry is NOT enforced: a key keeps working after its Expiration. Neither is the signing
  //    time: a request signed with a clock 3 h off is accepted. Tests about expiry must therefore
  //    check Expiration themselves; short lifetimes (60–120 s) are fine for driving renewal timing.
  t.test('(d) short DurationSeconds accepted; expiry and clock skew not enforced', async (t) => {
    for (const d of [60, 120]) await assumeBracketed(t, moto, d, d);
    // A negative duration is accepted too, and gives a credential that expired an hour ago:
    // no waiting for one to lapse.
    const c = await assumeBracketed(t, moto, -3600, -3600);
    t.ok(c.Expiration.getTime() < Date.now(), 'the credential has expired');
    const expired = s3(moto, asCreds(c));
    t.equal(
      await outcome(expired.send(new GetObjectCommand({ Bucket: moto.bucket, Key: 'ws1/from-js.txt' }))),
      'ok',
      'moto still accepts the expired credential (expiry not enforced)',
    );
    const id = await sts(moto, asCreds(c)).send(new GetCallerIdentityCommand({}));
    t.equal(id.Account, moto.accountId, 'GetCallerIdentity also works after expiry');

    const skewed = s3(moto, asCreds(await assume(moto)), { systemClockOffset: -3 * 3600 * 1000 });
    t.equal(
      await outcome(skewed.send(new GetObjectCommand({ Bucket: moto.bucket, Key: 'ws1/from-js.txt' }))),
      'ok',
      'a signature dated 3 h ago is accepted (no RequestTimeTooSkewed)',
    );
  });
});

t.test('stop() ends moto', async (t) => {
  if (!requireTool(t, 'moto_server', motoServer(), HINTS.moto)) return;
  const moto = await startMoto();
  const t0 = Date.now();
  await moto.stop();
  t.comment(`stop took ${Date.now() - t0} ms`);
  await moto.stop(); // idempotent
  const refused = await fetch(`${moto.endpoint}/moto-api/config`).then(
    () => 'answered',
    (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message,
  );
  t.equal(refused, 'ECONNREFUSED', 'nothing listens on the port any more');
});
