/**
 * The AWS CLI, both majors, each picked by absolute path (Debian's awscli is v2 at /usr/bin/aws;
 * the image Python's `aws` is v1): `s3 cp` up and down against moto S3 with SigV4 enforced,
 * credentials from the daemon; v2's `configure export-credentials` shows the served credential;
 * and both with `--profile` through `eodh-credd credential-process`.
 *
 * What differs between them (read from their botocore): v1 (botocore ≥ 1.33) reads the token
 * from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE and the S3 endpoint from AWS_ENDPOINT_URL_S3.
 * Debian's v2 2.9 bundles an older botocore that knows neither: it takes the token by value
 * (AWS_CONTAINER_AUTHORIZATION_TOKEN) and the endpoint with --endpoint-url.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type CliResult, runCli, runProgram } from '../helpers/daemon.js';
import { type Interop, startInterop } from '../helpers/interop.js';
import { awsCliV1, awsCliV2, HINTS, requireTool, versionOf } from '../helpers/tools.js';

const v1 = awsCliV1();
const v2 = awsCliV2();
if (v1) t.comment(`AWS CLI v1: ${v1}: ${versionOf(v1)}`);
if (v2) t.comment(`AWS CLI v2: ${v2}: ${versionOf(v2)}`);

const world = v1 || v2 ? await startInterop(t) : null;

function ok(t: Test, out: CliResult, what: string): boolean {
  return t.equal(out.code, 0, what, { stdout: out.stdout, stderr: out.stderr });
}

/** `aws s3 cp` a file up, then down again, and check both ends. */
async function copyBothWays(
  t: Test,
  world: Interop,
  aws: string,
  env: Record<string, string>,
  prefix: string,
  extraArgs: string[] = [],
): Promise<void> {
  const dir = world.scratch(prefix);
  const local = join(dir, 'up.txt');
  const content = `uploaded by ${prefix}\n`;
  writeFileSync(local, content);
  const url = `s3://${world.moto.bucket}/${prefix}/file.txt`;
  const up = await runProgram(aws, [...extraArgs, 's3', 'cp', local, url], { env });
  if (!ok(t, up, 'upload: aws s3 cp FILE s3://…')) return;
  t.equal(await world.getObject(`${prefix}/file.txt`), content, 'the object is in moto S3');
  await world.putObject(`${prefix}/down.txt`, `put by the test for ${prefix}`);
  const down = await runProgram(
    aws,
    [...extraArgs, 's3', 'cp', `s3://${world.moto.bucket}/${prefix}/down.txt`, join(dir, 'down.txt')],
    { env },
  );
  if (!ok(t, down, 'download: aws s3 cp s3://… FILE')) return;
  t.equal(
    readFileSync(join(dir, 'down.txt'), 'utf8'),
    `put by the test for ${prefix}`,
    "the download has the object's content",
  );
}

/** A ~/.aws/config with the stanza `eodh-credd aws-profile` prints, and an env without container variables. */
async function profileEnv(t: Test, world: Interop): Promise<Record<string, string>> {
  const stanza = await runCli(world.home, ['aws-profile', world.workspace]);
  t.equal(stanza.code, 0, 'aws-profile prints the stanza', { stderr: stanza.stderr });
  mkdirSync(join(world.home.root, '.aws'), { recursive: true });
  writeFileSync(join(world.home.root, '.aws', 'config'), stanza.stdout);
  const env = await world.clientEnv();
  for (const k of Object.keys(env)) if (k.startsWith('AWS_CONTAINER_')) delete env[k];
  return env;
}

t.test('AWS CLI v1', async (t) => {
  if (!requireTool(t, 'AWS CLI v1', v1, HINTS.awsV1) || !world) return;
  const endpoint = { AWS_ENDPOINT_URL_S3: world.moto.endpoint };

  t.test('token by file (the variables `eodh-credd env` prints)', async (t) => {
    await copyBothWays(t, world, v1, await world.clientEnv({ extra: endpoint }), 'cli-v1-file');
  });
  t.test('token by value, localhost', async (t) => {
    await copyBothWays(
      t,
      world,
      v1,
      await world.clientEnv({ token: 'value', host: 'localhost', extra: endpoint }),
      'cli-v1-value',
    );
  });
  t.test('--profile with credential_process', async (t) => {
    const env = { ...(await profileEnv(t, world)), ...endpoint };
    await copyBothWays(t, world, v1, env, 'cli-v1-profile', ['--profile', `eodh-${world.workspace}-process`]);
  });
});

t.test('AWS CLI v2', async (t) => {
  if (!requireTool(t, 'AWS CLI v2', v2, HINTS.awsV2) || !world) return;
  const endpoint = ['--endpoint-url', world.moto.endpoint];

  t.test('token by value, 127.0.0.1', async (t) => {
    await copyBothWays(t, world, v2, await world.clientEnv({ token: 'value' }), 'cli-v2-value', endpoint);
  });

  t.test('configure export-credentials shows the served credential', async (t) => {
    const out = await runProgram(v2, ['configure', 'export-credentials', '--format', 'process'], {
      env: await world.clientEnv({ token: 'value' }),
    });
    if (!ok(t, out, 'export-credentials')) return;
    const exported = JSON.parse(out.stdout) as Record<string, unknown>;
    const served = await world.served();
    t.match(exported, {
      Version: 1,
      AccessKeyId: served.AccessKeyId,
      SecretAccessKey: served.SecretAccessKey,
      SessionToken: served.Token,
    });
    t.equal(Date.parse(String(exported.Expiration)), Date.parse(served.Expiration), 'with the served expiry');
  });

  t.test('--profile with credential_process', async (t) => {
    const env = await profileEnv(t, world);
    const profile = ['--profile', `eodh-${world.workspace}-process`];
    const local = join(world.scratch('cli-v2-profile'), 'up.txt');
    writeFileSync(local, 'uploaded by AWS CLI v2 with --profile\n');
    const up = await runProgram(
      v2,
      [...profile, ...endpoint, 's3', 'cp', local, `s3://${world.moto.bucket}/cli-v2-profile/up.txt`],
      { env },
    );
    if (ok(t, up, 'upload: aws --profile … s3 cp FILE s3://…')) {
      t.equal(
        await world.getObject('cli-v2-profile/up.txt'),
        'uploaded by AWS CLI v2 with --profile\n',
        'the object is in moto S3',
      );
    }
    const out = await runProgram(v2, ['configure', 'export-credentials', ...profile], { env });
    if (ok(t, out, 'export-credentials --profile')) {
      t.equal(
        (JSON.parse(out.stdout) as { AccessKeyId: string }).AccessKeyId,
        (await world.served()).AccessKeyId,
        'the profile yields the served key',
      );
    }
  });
});
