/**
 * boto3 (the image's Python) against moto S3 with SigV4 enforced, credentials only from the
 * daemon: the script is a user's, unchanged (test/interop/clients/s3_roundtrip.py), and finds
 * everything in its environment. Every way of pointing it at the daemon: the token by file (what
 * `eodh-credd env` prints) and by value, 127.0.0.1 and localhost in the URI, and a profile in
 * ~/.aws/config whose credential_process is `eodh-credd credential-process`.
 */
import t, { type Test } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, runProgram } from '../helpers/daemon.js';
import { startInterop, type ClientEnvOptions, type Interop } from '../helpers/interop.js';
import { HINTS, pythonWithBoto3, requireTool, versionOf } from '../helpers/tools.js';

const SCRIPT = fileURLToPath(new URL('./clients/s3_roundtrip.py', import.meta.url));

interface RoundTrip {
  boto3: string;
  method: string;
  accessKeyId: string;
  roundTrip: boolean;
  listed: string[];
}

async function roundTrip(t: Test, python: string, world: Interop, prefix: string, env: Record<string, string>, profile?: string): Promise<RoundTrip | null> {
  const out = await runProgram(python, [SCRIPT, world.moto.bucket, prefix, ...(profile ? [profile] : [])], { env });
  if (!t.equal(out.code, 0, 'the script succeeds', { stderr: out.stderr })) return null;
  const result = JSON.parse(out.stdout) as RoundTrip;
  t.ok(result.roundTrip, 'what it put is what it got');
  t.same(result.listed, [`${prefix}/object.txt`], 'and it lists it');
  t.equal(await world.getObject(`${prefix}/object.txt`), `hello from boto3 ${result.boto3}`, 'the object is in moto S3');
  return result;
}

const python = pythonWithBoto3();
if (requireTool(t, 'boto3', python, HINTS.boto3)) {
  t.comment(`boto3: ${versionOf(python, ['-c', 'import boto3, botocore; print("boto3", boto3.__version__, "botocore", botocore.__version__)'])}`);
  const world = await startInterop(t);
  const endpoint = { AWS_ENDPOINT_URL_S3: world.moto.endpoint };

  const cases: Array<[string, ClientEnvOptions]> = [
    ['token by file, 127.0.0.1 (as `eodh-credd env` prints it)', { token: 'file', host: '127.0.0.1' }],
    ['token by value, 127.0.0.1', { token: 'value', host: '127.0.0.1' }],
    ['token by file, localhost', { token: 'file', host: 'localhost' }],
    ['token by value, localhost', { token: 'value', host: 'localhost' }],
  ];
  for (const [name, options] of cases) {
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
    const result = await roundTrip(t, python, world, 'boto3-profile', { ...env, ...endpoint }, `eodh-${world.workspace}`);
    if (!result) return;
    t.equal(result.method, 'custom-process', 'botocore ran the credential_process');
    t.equal(result.accessKeyId, (await world.served()).AccessKeyId, 'and got the credential the daemon serves');
  });
}
