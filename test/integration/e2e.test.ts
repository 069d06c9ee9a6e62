/**
 * End to end, the way a user meets eodh-credd: the hub simulator minting S3 credentials through
 * moto's STS, moto_server S3 with SigV4 and IAM enforced, the built daemon as a child process.
 * boto3 and the JS SDK v3 (default chain) put and get an object with nothing but the lines
 * `eodh-credd env <ws>` prints, eval'ed in bash (plus the S3 endpoint, because S3 here is moto);
 * the same with a wrong client token fails in the client with a 401; and the AccountId the daemon
 * serves is moto's account.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { CLI, type CliResult, runCli, runProgram, waitFor } from '../helpers/daemon.js';
import { type Interop, startInterop } from '../helpers/interop.js';
import { HINTS, pythonWithBoto3, requireTool } from '../helpers/tools.js';

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

/**
 * Run `program` in bash after `eval "$(eodh-credd env <ws>)"`, from the user's environment (HOME,
 * XDG dirs, PATH) without any AWS variable of this process. `after` runs after the eval.
 */
async function withEnvLines(world: Interop, key: string, program: string[], after = ''): Promise<CliResult> {
  const script = `eval "$("$NODE" "$CLI" env "$WS")" || exit 99\n${after}\nexec "$@"`;
  const env = {
    ...world.home.env,
    NODE: process.execPath,
    CLI,
    WS: world.workspace,
    AWS_ENDPOINT_URL_S3: world.moto.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    BUCKET: world.moto.bucket,
    KEY: key,
  };
  return runProgram('/bin/bash', ['-c', script, 'bash', ...program], { env, cwd: ROOT, timeoutMs: 60_000 });
}

function ok(t: Test, out: CliResult, what: string): boolean {
  return t.equal(out.code, 0, what, { stdout: out.stdout, stderr: out.stderr });
}

const world = await startInterop(t);
const wrongTokenFile = join(world.scratch('wrong'), 'token');
writeFileSync(wrongTokenFile, 'not-the-client-token', { mode: 0o600 });
const wrongToken = `export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${wrongTokenFile}`;

t.test('the env lines are what `eodh-credd env` prints', async (t) => {
  const out = await runCli(world.home, ['env', world.workspace]);
  t.equal(out.code, 0, out.stderr);
  t.match(
    out.stdout,
    /^export AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:\d+\/v1\/workspaces\/ws1\/credentials$/m,
  );
  t.match(out.stdout, /^export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=\S+\/tokens\/ws1\.token$/m);
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
