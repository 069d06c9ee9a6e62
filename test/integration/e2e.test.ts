/**
 * End to end, the way a user meets eodh-credd: the hub simulator minting S3 credentials through
 * moto's STS, moto_server S3 with SigV4 and IAM enforced, the built daemon as a child process.
 * boto3 and the JS SDK v3 (default chain) put and get an object with nothing but the lines
 * `eodh-credd env <ws>` prints, eval'ed in bash (plus the S3 endpoint, because S3 here is moto);
 * the same with a wrong client token fails in the client with a 401; and the AccountId the daemon
 * serves is moto's account. The same lines, and nothing else, serve Debian's AWS CLI v2 (2.9) and
 * rclone (1.60), which read only AWS_CONTAINER_AUTHORIZATION_TOKEN; the JS SDK prints no warning
 * with them; and a boto3 process started with them keeps working across `client-token rotate`
 * (the grace period), but not across `client-token rotate --grace 0` (#15).
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { CLI, type CliResult, runCli, runProgram, waitFor } from '../helpers/daemon.js';
import { type Interop, startInterop } from '../helpers/interop.js';
import { awsCliV2, HINTS, pythonWithBoto3, rclone, requireTool, versionOf } from '../helpers/tools.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const BOTO3 = `
import os, boto3
s3 = boto3.client("s3")
bucket, key = os.environ["BUCKET"], os.environ["KEY"]
s3.put_object(Bucket=bucket, Key=key, Body=b"written by boto3")
print(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
`;

const JS = `
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
const { BUCKET: Bucket, KEY: Key } = process.env;
const s3 = new S3Client({});
await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'written by JS v3' }));
console.log(await (await s3.send(new GetObjectCommand({ Bucket, Key }))).Body.transformToString());
s3.destroy();
`;

/** The environment of a shell that evals `eodh-credd env`: the home's, the CLI, and moto's bucket and object. */
function envLinesEnv(world: Interop, key: string): Record<string, string> {
  return {
    ...world.home.env,
    NODE: process.execPath,
    CLI,
    WS: world.workspace,
    AWS_ENDPOINT_URL_S3: world.moto.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    BUCKET: world.moto.bucket,
    KEY: key,
  };
}

/**
 * Run `program` in bash after `eval "$(eodh-credd env <ws>)"`, from the user's environment (HOME,
 * XDG dirs, PATH) without any AWS variable of this process. `after` runs after the eval.
 */
async function withEnvLines(world: Interop, key: string, program: string[], after = ''): Promise<CliResult> {
  const script = `eval "$("$NODE" "$CLI" env "$WS")" || exit 99\n${after}\nexec "$@"`;
  const env = envLinesEnv(world, key);
  return runProgram('/bin/bash', ['-c', script, 'bash', ...program], { env, cwd: ROOT, timeoutMs: 60_000 });
}

function ok(t: Test, out: CliResult, what: string): boolean {
  return t.equal(out.code, 0, what, { stdout: out.stdout, stderr: out.stderr });
}

const world = await startInterop(t);
const wrongTokenFile = join(world.scratch('wrong'), 'token');
writeFileSync(wrongTokenFile, 'not-the-client-token', { mode: 0o600 });
const wrongToken = 'export AWS_CONTAINER_AUTHORIZATION_TOKEN=not-the-client-token';

t.test('the env lines are what `eodh-credd env` prints', async (t) => {
  const out = await runCli(world.home, ['env', world.workspace]);
  t.equal(out.code, 0, out.stderr);
  t.match(
    out.stdout,
    /^export AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:\d+\/v1\/workspaces\/ws1\/credentials$/m,
  );
  t.match(out.stdout, /^export AWS_CONTAINER_AUTHORIZATION_TOKEN=[A-Za-z0-9_-]{43}$/m);
  t.notMatch(out.stdout, /AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE/, 'one token variable: JS v3 warns when both are set');
  const file = await runCli(world.home, ['env', world.workspace, '--token', 'file']);
  t.match(file.stdout, /^export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=\S+\/tokens\/ws1\.token$/m);
  t.notMatch(file.stdout, /AWS_CONTAINER_AUTHORIZATION_TOKEN=/);
});

t.test('boto3', async (t) => {
  const python = pythonWithBoto3();
  if (!requireTool(t, 'boto3', python, HINTS.boto3)) return;
  const out = await withEnvLines(world, 'e2e/boto3.txt', [python, '-c', BOTO3]);
  if (ok(t, out, 'boto3 puts and gets an object')) t.equal(out.stdout.trim(), 'written by boto3');
  t.equal(await world.getObject('e2e/boto3.txt'), 'written by boto3', 'it is in moto S3');

  const refused = await withEnvLines(world, 'e2e/boto3-wrong.txt', [python, '-c', BOTO3], wrongToken);
  t.not(refused.code, 0, 'with a wrong client token boto3 fails');
  t.match(refused.stderr, /CredentialRetrievalError|NoCredentialsError/, 'for want of credentials');
  t.match(refused.stderr, /401/, 'and says 401');
});

t.test('JS SDK v3, default provider chain', async (t) => {
  const program = [process.execPath, '--no-warnings', '--input-type=module', '-e', JS];
  const out = await withEnvLines(world, 'e2e/js.txt', program);
  if (ok(t, out, 'JS v3 puts and gets an object')) t.equal(out.stdout.trim(), 'written by JS v3');
  // --no-warnings silences process warnings, not console.warn, which the SDK's warning goes through.
  t.equal(out.stderr, '', 'and prints no warning');
  const both = await withEnvLines(
    world,
    'e2e/js-both.txt',
    program,
    `export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${world.tokenFile()}`,
  );
  t.match(both.stderr, /awsContainerAuthorizationTokenFile/, 'the warning it would print were both variables set');
  t.equal(await world.getObject('e2e/js.txt'), 'written by JS v3', 'it is in moto S3');

  const refused = await withEnvLines(world, 'e2e/js-wrong.txt', program, wrongToken);
  t.not(refused.code, 0, 'with a wrong client token JS v3 fails');
  // The chain tries every provider and reports them together, without the status.
  t.match(refused.stderr, /CredentialsProviderError: Could not load credentials/, 'for want of credentials');
});

t.test("AccountId served is moto's account", async (t) => {
  // The daemon learns it with STS GetCallerIdentity when it renews.
  const refreshed = await runCli(world.home, ['refresh', world.workspace]);
  ok(t, refreshed, 'eodh-credd refresh');
  const accountId = await waitFor(async () => (await world.served()).AccountId, 15_000, {
    what: 'AccountId in the served credential',
  });
  t.equal(accountId, world.moto.accountId);
});

t.test("Debian's AWS CLI v2 with nothing but the env lines", async (t) => {
  const aws = awsCliV2();
  if (!requireTool(t, 'AWS CLI v2', aws, HINTS.awsV2)) return;
  t.comment(versionOf(aws));
  await world.putObject('e2e/aws2.txt', 'put for the AWS CLI v2');
  // Its botocore knows no AWS_ENDPOINT_URL_S3: the endpoint goes on the command line (moto, not AWS).
  const out = await withEnvLines(world, 'unused', [
    aws,
    '--endpoint-url',
    world.moto.endpoint,
    's3',
    'cp',
    `s3://${world.moto.bucket}/e2e/aws2.txt`,
    '-',
  ]);
  if (ok(t, out, 'aws s3 cp s3://… -')) t.equal(out.stdout, 'put for the AWS CLI v2');
});

t.test('rclone 1.60 with nothing but the env lines', async (t) => {
  const bin = rclone();
  if (!requireTool(t, 'rclone', bin, HINTS.rclone)) return;
  t.comment(versionOf(bin, ['version']).split('\n')[0] ?? '');
  await world.putObject('e2e/rclone.txt', 'put for rclone');
  const script = `export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_EODH_TYPE=s3 RCLONE_CONFIG_EODH_PROVIDER=Other RCLONE_CONFIG_EODH_ENV_AUTH=true RCLONE_CONFIG_EODH_ENDPOINT=${world.moto.endpoint} RCLONE_CONFIG_EODH_FORCE_PATH_STYLE=true RCLONE_CONFIG_EODH_REGION="$AWS_REGION"`;
  const local = join(world.scratch('rclone'), 'down.txt');
  // copyto, not cat: cat lists with a "/" delimiter, whose signature moto_server gets wrong.
  const out = await withEnvLines(
    world,
    'unused',
    [bin, '--retries', '1', '--low-level-retries', '1', 'copyto', `eodh:${world.moto.bucket}/e2e/rclone.txt`, local],
    script,
  );
  if (ok(t, out, 'rclone copyto eodh:… FILE')) t.equal(readFileSync(local, 'utf8'), 'put for rclone');
});

/** A boto3 process started with the env lines that runs one S3 read, in a new session, per line on its stdin. */
const READER = `
import os, sys, boto3
for line in sys.stdin:
    try:
        s3 = boto3.session.Session().client("s3")
        body = s3.get_object(Bucket=os.environ["BUCKET"], Key=os.environ["KEY"])["Body"].read().decode()
        print("ok " + body, flush=True)
    except Exception as e:
        print("error " + type(e).__name__, flush=True)
`;

t.test('a running boto3 process keeps working across client-token rotate (grace), not across --grace 0', async (t) => {
  const python = pythonWithBoto3();
  if (!requireTool(t, 'boto3', python, HINTS.boto3)) return;
  await world.putObject('e2e/rotate.txt', 'still here');
  const script = `eval "$("$NODE" "$CLI" env "$WS")" || exit 99\nexec "$@"`;
  const child = spawn('/bin/bash', ['-c', script, 'bash', python, '-c', READER], {
    env: envLinesEnv(world, 'e2e/rotate.txt'),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const read = async () => {
    child.stdin!.write('go\n');
    return String((await lines.next()).value);
  };
  /** Wait until the daemon has seen the rotation: the new token from the file works. */
  const newTokenWorks = () =>
    waitFor(
      async () => {
        const url = `${world.daemon.url}/v1/workspaces/${world.workspace}/credentials`;
        const r = await fetch(url, { headers: { authorization: world.token() } });
        return r.status === 200 || undefined;
      },
      10_000,
      { what: 'the new client token accepted' },
    );

  t.equal(await read(), 'ok still here', 'before the rotation');
  const rotated = await runCli(world.home, ['client-token', 'rotate', world.workspace]);
  t.equal(rotated.code, 0, rotated.stderr);
  t.match(rotated.stdout, /keeps working until/);
  await newTokenWorks();
  t.equal(await read(), 'ok still here', 'after client-token rotate: the previous token is in its grace period');

  const emergency = await runCli(world.home, ['client-token', 'rotate', world.workspace, '--grace', '0']);
  t.equal(emergency.code, 0, emergency.stderr);
  await newTokenWorks();
  // The daemon polls the database each second: wait until the process's token is refused.
  const answer = await waitFor(async () => ((await read()).startsWith('error') ? 'refused' : undefined), 10_000, {
    what: 'the old token refused',
  });
  t.equal(answer, 'refused', 'after --grace 0 the token the process holds is refused');
  child.stdin!.end();
  await once(child, 'exit');
});
