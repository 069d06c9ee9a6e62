/**
 * A real AWS emulator (moto_server) for integration tests: STS, IAM and S3 on loopback, with
 * SigV4 signatures and IAM policies ENFORCED once setup is done.
 *
 *   const moto = await startMoto(t);          // stopped by t's teardown
 *   new STSClient({ endpoint: moto.endpoint, region: moto.region, credentials: moto.baseCredentials })
 *   new S3Client({ endpoint: moto.endpoint, region: moto.region, forcePathStyle: true, credentials })
 *
 * Read (or destroy) every GetObject Body before moto stops: a body left open can fail with an
 * uncaught "aborted" error when moto goes away, which tap reports as a failure.
 *
 * How auth gets switched on. moto checks signatures and policies only after it has served
 * `INITIAL_NO_AUTH_ACTION_COUNT` authenticated actions (moto/core/authorization.py; default: never).
 * Guessing that count is brittle: one S3 call can count differently from one IAM call, a retry
 * counts again, and a count that is too high silently leaves the next requests unauthenticated. So
 * moto starts with the count at infinity, the setup creates everything without credentials, and
 * then POSTs "0" to `/moto-api/reset-auth` (the endpoint moto's own `set_initial_no_auth_action_count`
 * uses in server mode), which enforces auth from the very next request whatever the setup cost.
 * Before returning, startMoto checks that a made-up key is refused, so a moto that stopped
 * enforcing auth fails here rather than letting tests pass for the wrong reason.
 *
 * What moto 5.2 does NOT check (read from moto/iam/access_control.py and moto/sts, and pinned
 * by test/helpers/moto.test.ts):
 *  - Credential expiry: an assumed-role key works after its `Expiration`, until moto is stopped.
 *    Tests that care about expiry must look at `Expiration` themselves.
 *  - DurationSeconds bounds: any value is accepted, 0, 1 and 60 included (AWS requires 900 up
 *    to the role's MaxSessionDuration). The JS SDK sends what it is given; boto3 refuses < 900 on
 *    the client side unless `Config(parameter_validation=False)`.
 *  - The request time (X-Amz-Date): a signature made with a clock hours off is accepted.
 * What it does check: the access key exists, the signature matches its secret, the session token
 * matches the assumed-role key, identity policies (Action and Resource) allow the action, and for
 * AssumeRole the role's trust policy names the caller. sts:GetCallerIdentity is always allowed.
 * Trust policy quirk: moto matches the principal ARN literally, so `arn:aws:iam::<acct>:root`
 * does NOT admit the account's users as on AWS: the role below trusts the user's ARN by name.
 *
 * The setup speaks the IAM Query API and S3 REST API directly with fetch and a small SigV4 signer
 * (@aws-sdk/client-iam is not a dependency). A python3/boto3 setup script worked too but cost
 * about a second more: every python start through a pyenv shim costs ~0.5 s, plus boto3's import.
 *
 * Cleanup: moto runs in its own process group with a small watchdog. stop() (and t's teardown)
 * kills that group and waits for moto to exit; a process 'exit' hook kills it too; and if this
 * Node process dies without running hooks (SIGTERM from tap on timeout, SIGKILL), the watchdog
 * sees its stdin pipe close and kills moto. No moto is left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { HINTS, motoServer } from './tools.js';

export interface Moto {
  /** `http://127.0.0.1:PORT`: S3 needs `forcePathStyle: true` (no virtual-host DNS on loopback). */
  endpoint: string;
  region: 'eu-west-2';
  /** `workspaces-eodhp`, created in eu-west-2. */
  bucket: string;
  /** Long-lived IAM user key (AKIA…) allowed only sts:AssumeRole on `roleArn`. */
  baseCredentials: { accessKeyId: string; secretAccessKey: string };
  /** Role trusting the base user, with an inline policy allowing s3:* on the bucket and its objects. */
  roleArn: string;
  /** ARN of the IAM user behind `baseCredentials`. */
  userArn: string;
  /** moto's default account, 123456789012. */
  accountId: string;
  /** Kill moto (SIGTERM, then SIGKILL after 3 s); resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
}

/** Anything with tap's `teardown` (a tap Test). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export const MOTO_REGION = 'eu-west-2' as const;
export const MOTO_BUCKET = 'workspaces-eodhp';
const START_DEADLINE_MS = 60_000;
const PORT_ATTEMPTS = 3;

// The wrapper starts a watchdog that holds a dup of stdin (our pipe) on fd 3, then execs moto, so
// the child's pid is moto's own and 'exit' means moto is gone. The watchdog kills moto ($$ is the
// pid that became moto) when the pipe reaches EOF, i.e. when this process dies without cleaning
// up. Background jobs get /dev/null as stdin, hence fd 3. stop() kills the watchdog (same process
// group) before closing the pipe, so it never fires after moto is gone.
const WRAPPER = `
exec 3<&0
{ read -r -u 3 _ || true; kill -TERM $$ 2>/dev/null; } </dev/null >/dev/null 2>&1 &
exec "$2" -H 127.0.0.1 -p "$1" </dev/null 3<&-
`;

interface SetupResult {
  accessKeyId: string;
  secretAccessKey: string;
  roleArn: string;
  userArn: string;
  accountId: string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not pick a free port'));
      });
    });
  });
}

/** Keep the last `max` characters of a stream (moto logs every request). */
function tail(stream: NodeJS.ReadableStream | null, max = 8192): () => string {
  let buf = '';
  stream?.on('data', (d: Buffer) => {
    buf = (buf + d.toString()).slice(-max);
  });
  return () => buf;
}

function envWithoutAws(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
  return env;
}

function waitExit(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

function stopper(child: ChildProcess): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      const exited = waitExit(child);
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      killGroup(child, 'SIGKILL'); // the watchdog
      child.stdin?.destroy();
      live.delete(child);
    })();
    return stopping;
  };
}

/**
 * Minimal AWS SigV4 signing (header auth). moto ignores signatures during setup, but it routes
 * the request by the service in the Authorization header's credential scope, so setup requests
 * are signed properly with throwaway credentials rather than carrying a fake header.
 */
function sigv4(
  method: string,
  url: URL,
  body: string,
  headers: Record<string, string>,
  region: string,
  service: string,
  creds: { accessKeyId: string; secretAccessKey: string },
): Record<string, string> {
  const sha256 = (d: string) => createHash('sha256').update(d).digest('hex');
  const hmac = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest();
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const date = amzDate.slice(0, 8);
  const all: Record<string, string> = {
    ...headers,
    host: url.host,
    'x-amz-date': amzDate,
    'x-amz-content-sha256': sha256(body),
  };
  const names = Object.keys(all)
    .map((k) => k.toLowerCase())
    .sort();
  const lower = Object.fromEntries(Object.entries(all).map(([k, v]) => [k.toLowerCase(), v.trim()]));
  const canonical = [
    method,
    url.pathname,
    '', // no query string in setup requests
    ...names.map((n) => `${n}:${lower[n]}`),
    '',
    names.join(';'),
    lower['x-amz-content-sha256'],
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, date), region), service), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return {
    ...all,
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}

// Auth is off during setup: any well-formed key will do.
const SETUP_CREDS = { accessKeyId: 'AKIASETUPSETUPSETUP0', secretAccessKey: 'setup-only' };

async function call(
  endpoint: string,
  service: 'iam' | 's3',
  method: string,
  path: string,
  body: string,
  contentType: string,
  creds = SETUP_CREDS,
): Promise<string> {
  const url = new URL(path, endpoint);
  const region = service === 'iam' ? 'us-east-1' : MOTO_REGION;
  const headers = sigv4(method, url, body, { 'content-type': contentType }, region, service, creds);
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`moto setup: ${service} ${method} ${path} ${body}: ${res.status} ${text}`);
  return text;
}

/** One IAM Query API action; returns the response XML. */
function iam(endpoint: string, action: string, params: Record<string, string>): Promise<string> {
  const body = new URLSearchParams({ Action: action, Version: '2010-05-08', ...params }).toString();
  return call(endpoint, 'iam', 'POST', '/', body, 'application/x-www-form-urlencoded; charset=utf-8');
}

function xmlField(xml: string, name: string): string {
  const m = new RegExp(`<${name}>([^<]+)</${name}>`).exec(xml);
  if (!m?.[1]) throw new Error(`moto setup: no <${name}> in ${xml}`);
  return m[1];
}

const policy = (...Statement: object[]) => JSON.stringify({ Version: '2012-10-17', Statement });

/** Wait until moto answers HTTP, or fail if it exits or the deadline passes. */
async function waitReady(endpoint: string, moto: ChildProcess, motoLog: () => string): Promise<void> {
  const deadline = Date.now() + START_DEADLINE_MS;
  for (;;) {
    if (moto.exitCode !== null || moto.signalCode !== null) {
      throw new MotoExited(`moto_server exited (${moto.exitCode ?? moto.signalCode}) during start-up:\n${motoLog()}`);
    }
    try {
      const res = await fetch(`${endpoint}/moto-api/config`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`moto did not answer on ${endpoint} within ${START_DEADLINE_MS} ms:\n${motoLog()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Create the user, its key, the role and the bucket while auth is off; then switch auth on. */
async function setUp(endpoint: string): Promise<SetupResult> {
  const userName = 'eodh-credd-test';
  const roleName = 'eodh-workspace-s3';
  const bucket = call(
    endpoint,
    's3',
    'PUT',
    `/${MOTO_BUCKET}`,
    `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${MOTO_REGION}</LocationConstraint></CreateBucketConfiguration>`,
    'application/xml',
  );
  bucket.catch(() => undefined); // awaited in Promise.all below; no unhandled rejection meanwhile
  const userXml = await iam(endpoint, 'CreateUser', { UserName: userName });
  const keyXml = await iam(endpoint, 'CreateAccessKey', { UserName: userName });
  const userArn = xmlField(userXml, 'Arn');
  const accountId = userArn.split(':')[4] ?? '';
  const roleXml = await iam(endpoint, 'CreateRole', {
    RoleName: roleName,
    MaxSessionDuration: '43200',
    AssumeRolePolicyDocument: policy({
      Effect: 'Allow',
      // moto compares principals literally: name the user; :root is there for realism only.
      Principal: { AWS: [userArn, `arn:aws:iam::${accountId}:root`] },
      Action: ['sts:AssumeRole', 'sts:TagSession'],
    }),
  });
  const roleArn = xmlField(roleXml, 'Arn');
  await Promise.all([
    bucket,
    iam(endpoint, 'PutUserPolicy', {
      UserName: userName,
      PolicyName: 'assume-workspace-role',
      PolicyDocument: policy({ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: roleArn }),
    }),
    iam(endpoint, 'PutRolePolicy', {
      RoleName: roleName,
      PolicyName: 'workspace-bucket',
      PolicyDocument: policy({
        Effect: 'Allow',
        Action: 's3:*',
        Resource: [`arn:aws:s3:::${MOTO_BUCKET}`, `arn:aws:s3:::${MOTO_BUCKET}/*`],
      }),
    }),
  ]);
  // From the next request on, every action is authenticated and authorised. text/plain, or
  // moto's Flask parses the body as a form and sees an empty one.
  const res = await fetch(`${endpoint}/moto-api/reset-auth`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: '0',
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`moto setup: reset-auth: ${res.status} ${text}`);
  return {
    accessKeyId: xmlField(keyXml, 'AccessKeyId'),
    secretAccessKey: xmlField(keyXml, 'SecretAccessKey'),
    roleArn,
    userArn,
    accountId,
  };
}

class MotoExited extends Error {}

/** Prove that auth is enforced: moto must refuse a key it never issued. */
async function assertAuthEnforced(endpoint: string): Promise<void> {
  const sts = new STSClient({
    endpoint,
    region: MOTO_REGION,
    maxAttempts: 1,
    credentials: { accessKeyId: 'AKIAMADEUPMADEUP0000', secretAccessKey: 'made-up' },
  });
  try {
    await sts.send(new GetCallerIdentityCommand({}));
  } catch (e) {
    if ((e as { name?: string }).name === 'InvalidClientTokenId') return;
    throw new Error(`moto auth check: unexpected error ${(e as Error).name}: ${(e as Error).message}`);
  } finally {
    sts.destroy();
  }
  throw new Error('moto accepted a made-up access key: IAM auth is not enforced');
}

/**
 * Start moto_server on a free loopback port, create the user, role and bucket, then switch on
 * auth. With `t`, moto is stopped in `t.teardown`.
 */
export async function startMoto(t?: TeardownHost): Promise<Moto> {
  // Tests that can do without moto ask requireTool(t, 'moto_server', motoServer(), HINTS.moto) first.
  const command = motoServer();
  if (!command) throw new Error(`moto_server not found (${HINTS.moto})`);
  installExitHook();
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const child = spawn('bash', ['-c', WRAPPER, 'moto-wrapper', String(port), command], {
      detached: true, // own process group, so stop() can kill moto and the wrapper together
      env: { ...envWithoutAws(), INITIAL_NO_AUTH_ACTION_COUNT: 'inf' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(child);
    const log = tail(child.stderr);
    child.stdout?.resume();
    // A test that forgets stop() must not keep Node alive: the 'exit' hook then kills moto.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as Socket | null)?.unref();
    const stop = stopper(child);
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      await waitReady(endpoint, child, log);
      const s = await setUp(endpoint);
      await assertAuthEnforced(endpoint);
      const moto: Moto = {
        endpoint,
        region: MOTO_REGION,
        bucket: MOTO_BUCKET,
        baseCredentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
        roleArn: s.roleArn,
        userArn: s.userArn,
        accountId: s.accountId,
        stop,
      };
      t?.teardown(stop);
      return moto;
    } catch (e) {
      await stop();
      // Someone took the port between freePort() and moto's bind: try another one.
      if (e instanceof MotoExited && /address already in use/i.test(log()) && attempt < PORT_ATTEMPTS) continue;
      throw e;
    }
  }
}
