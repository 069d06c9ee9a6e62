/**
 * rclone (Debian's; the Go SDK, aws-sdk-go v1) with `env_auth = true`: the remote is configured
 * entirely by RCLONE_CONFIG_<NAME>_* variables, and its credentials come from the container
 * endpoint through the SDK's remote credential provider. Copy a file up, copy one down, list.
 * (`rclone cat` and plain `lsf` list with a "/" delimiter, which moto_server's signature check
 * gets wrong, see the boto3 script; a recursive --fast-list has none.)
 *
 * rclone 1.60 (Debian 12) predates aws-sdk-go's support for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE,
 * so the token goes by value; it resolves the host name and requires loopback addresses, which
 * both 127.0.0.1 and localhost are.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type CliResult, runProgram } from '../helpers/daemon.js';
import { type Interop, startInterop } from '../helpers/interop.js';
import { HINTS, rclone, requireTool, versionOf } from '../helpers/tools.js';

const bin = rclone();

function remoteEnv(world: Interop): Record<string, string> {
  return {
    RCLONE_CONFIG: join(world.home.root, 'rclone.conf'), // absent: only the variables below count
    RCLONE_CONFIG_EODH_TYPE: 's3',
    RCLONE_CONFIG_EODH_PROVIDER: 'Other',
    RCLONE_CONFIG_EODH_ENV_AUTH: 'true',
    RCLONE_CONFIG_EODH_ENDPOINT: world.moto.endpoint,
    RCLONE_CONFIG_EODH_REGION: world.moto.region,
    RCLONE_CONFIG_EODH_FORCE_PATH_STYLE: 'true',
    // The workspace's bucket exists; a token scoped to it may not create buckets.
    RCLONE_S3_NO_CHECK_BUCKET: 'true',
  };
}

function ok(t: Test, out: CliResult, what: string): boolean {
  return t.equal(out.code, 0, what, { stdout: out.stdout, stderr: out.stderr });
}

if (requireTool(t, 'rclone', bin, HINTS.rclone)) {
  t.comment(`rclone: ${bin}: ${versionOf(bin, ['version'])}`);
  const world = await startInterop(t);

  for (const host of ['127.0.0.1', 'localhost'] as const) {
    t.test(`env_auth through the container endpoint (token by value, ${host})`, async (t) => {
      const env = await world.clientEnv({ token: 'value', host, extra: remoteEnv(world) });
      const prefix = `rclone-${host}`;
      const dir = world.scratch(prefix);
      writeFileSync(join(dir, 'up.txt'), `uploaded by rclone via ${host}\n`);
      const remote = `eodh:${world.moto.bucket}/${prefix}`;

      const up = await runProgram(bin, ['copyto', join(dir, 'up.txt'), `${remote}/up.txt`], { env });
      if (!ok(t, up, 'rclone copyto FILE remote:')) return;
      t.equal(
        await world.getObject(`${prefix}/up.txt`),
        `uploaded by rclone via ${host}\n`,
        'the object is in moto S3',
      );

      await world.putObject(`${prefix}/down.txt`, `put by the test for ${prefix}`);
      const down = await runProgram(bin, ['copyto', `${remote}/down.txt`, join(dir, 'down.txt')], { env });
      if (ok(t, down, 'rclone copyto remote: FILE'))
        t.equal(readFileSync(join(dir, 'down.txt'), 'utf8'), `put by the test for ${prefix}`);

      // A recursive listing without a delimiter: moto_server fails signatures of a "/" in the query.
      const list = await runProgram(bin, ['lsf', '-R', '--fast-list', '--files-only', `eodh:${world.moto.bucket}`], {
        env,
      });
      if (ok(t, list, 'rclone lsf -R --fast-list --files-only')) {
        const mine = list.stdout
          .split('\n')
          .filter((l) => l.startsWith(`${prefix}/`))
          .sort();
        t.same(mine, [`${prefix}/down.txt`, `${prefix}/up.txt`]);
      }
    });
  }
}
