/**
 * The AWS SDK for JavaScript v3 (@aws-sdk/client-s3 with the default provider chain) in a child
 * node process, so the chain reads a fresh environment as a user's program would: `new
 * S3Client({})` and nothing else; region, endpoint and credentials all come from the variables.
 * Token by file and by value, 127.0.0.1 and localhost.
 */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runProgram } from '../helpers/daemon.js';
import { CONTAINER_ENDPOINT_CASES, startInterop } from '../helpers/interop.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const version = (pkg: string) =>
  (JSON.parse(readFileSync(`${ROOT}/node_modules/${pkg}/package.json`, 'utf8')) as { version: string }).version;

/** A user's program; bare imports resolve from the working directory (the repository). */
const PROGRAM = `
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
const { BUCKET: Bucket, PREFIX: prefix } = process.env;
const s3 = new S3Client({});
const Key = prefix + '/object.txt';
await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'hello from JS v3' }));
const got = await (await s3.send(new GetObjectCommand({ Bucket, Key }))).Body.transformToString();
// No "/" in Prefix: moto_server checks signatures against a re-quoted query string.
const listed = (await s3.send(new ListObjectsV2Command({ Bucket, Prefix: prefix }))).Contents?.map((o) => o.Key) ?? [];
const credentials = await s3.config.credentials();
console.log(JSON.stringify({ got, listed, accessKeyId: credentials.accessKeyId, expiration: credentials.expiration }));
s3.destroy();
`;

t.comment(
  `@aws-sdk/client-s3 ${version('@aws-sdk/client-s3')}, @aws-sdk/credential-provider-node ${version('@aws-sdk/credential-provider-node')}, @aws-sdk/credential-provider-http ${version('@aws-sdk/credential-provider-http')}`,
);
const world = await startInterop(t);

for (const [name, options] of CONTAINER_ENDPOINT_CASES) {
  t.test(`default provider chain: ${name}`, async (t) => {
    const prefix = `js-${options.token}-${options.host}`;
    const env = await world.clientEnv({
      ...options,
      extra: { AWS_ENDPOINT_URL_S3: world.moto.endpoint, BUCKET: world.moto.bucket, PREFIX: prefix },
    });
    const out = await runProgram(process.execPath, ['--no-warnings', '--input-type=module', '-e', PROGRAM], {
      env,
      cwd: ROOT,
    });
    if (!t.equal(out.code, 0, 'the program succeeds', { stderr: out.stderr })) return;
    const result = JSON.parse(out.stdout) as { got: string; listed: string[]; accessKeyId: string; expiration: string };
    t.equal(result.got, 'hello from JS v3', 'what it put is what it got');
    t.same(result.listed, [`${prefix}/object.txt`], 'and it lists it');
    t.equal(await world.getObject(`${prefix}/object.txt`), 'hello from JS v3', 'the object is in moto S3');
    const served = await world.served();
    t.equal(result.accessKeyId, served.AccessKeyId, 'signed with the credential the daemon serves');
    t.equal(Date.parse(result.expiration), Date.parse(served.Expiration), 'and its expiry');
  });
}
