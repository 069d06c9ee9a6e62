/**
 * The world every interop test runs in: moto_server (STS + S3, SigV4 and IAM enforced), the hub
 * simulator minting S3 credentials through moto's STS, and the real built daemon (`eodh-credd
 * serve`) in an isolated home, with a workspace added the way a user adds one. Clients then run
 * as child processes with a clean environment: nothing of this process's AWS_* variables, HOME
 * pointing at the test home (no ~/.aws of the machine), the instance metadata service disabled,
 * and the container-endpoint variables that `eodh-credd env` printed.
 *
 *   const world = await startInterop(t);
 *   const env = world.clientEnv({ token: 'value', host: 'localhost' });
 *   await runProgram(python, ['-c', script], { env });
 *
 * Every process and file is cleaned up by t's teardown.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { clientTokenFile } from '../../src/config/paths.js';
import { startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { type Home, makeHome, runCli, type StartedServe, startServe, type TeardownHost } from './daemon.js';
import { type Moto, startMoto } from './moto.js';

export interface InteropOptions {
  /** Workspaces to add (default ['ws1']). */
  readonly workspaces?: readonly string[];
  /** Lifetime of the S3 credentials the hub hands out (default 3600). */
  readonly s3LifetimeSeconds?: number;
  /** Extra daemon config (TOML); the [sts] section is set here. */
  readonly config?: string;
}

/** The container answer. */
export interface Served {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly Token: string;
  readonly Expiration: string;
  readonly AccountId?: string;
}

export interface ClientEnvOptions {
  /** How the client token travels: by value (default, what `env` prints) or by file (`env --token file`). */
  readonly token?: 'file' | 'value';
  /** The host in AWS_CONTAINER_CREDENTIALS_FULL_URI (default what `env` printed, 127.0.0.1). */
  readonly host?: '127.0.0.1' | 'localhost';
  readonly workspace?: string;
  readonly extra?: Readonly<Record<string, string>>;
}

/** The ways a client may be pointed at the container endpoint: token by file or value, by address or name. */
export const CONTAINER_ENDPOINT_CASES: ReadonlyArray<readonly [string, ClientEnvOptions]> = [
  ['token by file, 127.0.0.1', { token: 'file', host: '127.0.0.1' }],
  ['token by value, 127.0.0.1 (as `eodh-credd env` prints it)', { token: 'value', host: '127.0.0.1' }],
  ['token by file, localhost', { token: 'file', host: 'localhost' }],
  ['token by value, localhost', { token: 'value', host: 'localhost' }],
];

export interface Interop {
  readonly moto: Moto;
  readonly simUrl: string;
  readonly hub: HubSimulatorClient;
  readonly home: Home;
  readonly daemon: StartedServe;
  /** The first workspace. */
  readonly workspace: string;
  /** The API key each workspace was added with (what `eodh-credd token` hands out). */
  apiKey(workspace?: string): string;
  /** What `eodh-credd env <ws> --format json` printed. */
  daemonEnv(workspace?: string): Promise<Record<string, string>>;
  tokenFile(workspace?: string): string;
  token(workspace?: string): string;
  /** A complete environment for a client process (see the file comment). */
  clientEnv(options?: ClientEnvOptions): Promise<Record<string, string>>;
  /** The credential the daemon serves now. */
  served(workspace?: string): Promise<Served>;
  /** S3 with the daemon's current credential, for the test to seed and check objects. */
  s3(workspace?: string): Promise<S3Client>;
  putObject(key: string, body: string | Uint8Array): Promise<void>;
  getObject(key: string): Promise<string>;
  listKeys(prefix: string): Promise<string[]>;
  /** A scratch directory inside the test home. */
  scratch(name: string): string;
}

/** Variables a client must never inherit from this process or the machine. */
const BASE_ENV_KEYS = ['PATH', 'LANG', 'LC_ALL', 'TZ', 'PYENV_ROOT', 'PYENV_VERSION', 'TMPDIR'] as const;

export async function startInterop(t: TeardownHost, options: InteropOptions = {}): Promise<Interop> {
  const workspaces = options.workspaces ?? ['ws1'];
  const moto = await startMoto(t);
  const sim = await startHubSimulator({
    s3LifetimeSeconds: options.s3LifetimeSeconds ?? 3600,
    sts: {
      endpoint: moto.endpoint,
      region: moto.region,
      accessKeyId: moto.baseCredentials.accessKeyId,
      secretAccessKey: moto.baseCredentials.secretAccessKey,
      roleArn: moto.roleArn,
    },
  });
  t.teardown(() => sim.close());
  const hub = new HubSimulatorClient(sim.url);
  const home = makeHome(t, {
    // Rotation off: the clients here are driven with the pasted key, which the tests compare what
    // they get against. Own-key minting and rotation are proven in test/scheduler/rotation.test.ts
    // and test/integration/two-installations.test.ts.
    config: `[sts]\nendpoint = "${moto.endpoint}"\nregion = "${moto.region}"\nverify = true\n\n[rotation]\nenabled = false\n${options.config ?? ''}`,
  });
  const init = await runCli(home, ['init']);
  if (init.code !== 0) throw new Error(`eodh-credd init failed (${init.code}): ${init.stderr}`);
  const apiKeys = new Map<string, string>();
  for (const ws of workspaces) {
    const key = await hub.createKey(ws, { expiresDays: 30 });
    apiKeys.set(ws, key.token);
    const added = await runCli(
      home,
      ['workspace', 'add', ws, '--hub', sim.url, '--token-id', key.id, '--region', moto.region],
      {
        stdin: key.token,
      },
    );
    if (added.code !== 0) throw new Error(`workspace add ${ws} failed (${added.code}): ${added.stderr}`);
  }
  const daemon = await startServe(home, { t });
  const first = workspaces[0]!;
  const envCache = new Map<string, Record<string, string>>();

  const daemonEnv = async (ws = first): Promise<Record<string, string>> => {
    let vars = envCache.get(ws);
    if (!vars) {
      const out = await runCli(home, ['env', ws, '--format', 'json']);
      if (out.code !== 0) throw new Error(`eodh-credd env ${ws} failed (${out.code}): ${out.stderr}`);
      vars = JSON.parse(out.stdout) as Record<string, string>;
      envCache.set(ws, vars);
    }
    return { ...vars };
  };
  const tokenFile = (ws = first) => clientTokenFile(home.paths, ws);
  const token = (ws = first) => readFileSync(tokenFile(ws), 'utf8');

  const served = async (ws = first): Promise<Served> => {
    const url = (await daemonEnv(ws)).AWS_CONTAINER_CREDENTIALS_FULL_URI!;
    const response = await fetch(url, { headers: { authorization: token(ws) }, signal: AbortSignal.timeout(10_000) });
    const body = (await response.json()) as Served;
    if (response.status !== 200) throw new Error(`daemon answered ${response.status}: ${JSON.stringify(body)}`);
    return body;
  };

  const s3 = async (ws = first): Promise<S3Client> => {
    const c = await served(ws);
    const client = new S3Client({
      endpoint: moto.endpoint,
      region: moto.region,
      forcePathStyle: true,
      maxAttempts: 1,
      credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.Token },
    });
    t.teardown(() => client.destroy());
    return client;
  };

  return {
    moto,
    simUrl: sim.url,
    hub,
    home,
    daemon,
    workspace: first,
    apiKey: (ws = first) => apiKeys.get(ws) ?? '',
    daemonEnv,
    tokenFile,
    token,
    served,
    s3,
    async clientEnv(o: ClientEnvOptions = {}) {
      const ws = o.workspace ?? first;
      const env: Record<string, string> = {};
      for (const k of BASE_ENV_KEYS) {
        const v = process.env[k];
        if (v !== undefined) env[k] = v;
      }
      Object.assign(env, {
        // The same user as the daemon's: credential_process finds the config and data there.
        ...home.env,
        HOME: home.root,
        // No IMDS probing: a client that fails to use the daemon must fail at once, not after
        // a timeout, and never find credentials elsewhere.
        AWS_EC2_METADATA_DISABLED: 'true',
        // The CLIs page output when they think a terminal is there.
        AWS_PAGER: '',
      });
      const vars = await daemonEnv(ws);
      if (o.host === 'localhost') {
        vars.AWS_CONTAINER_CREDENTIALS_FULL_URI = vars.AWS_CONTAINER_CREDENTIALS_FULL_URI!.replace(
          '//127.0.0.1:',
          '//localhost:',
        );
      }
      if (o.token === 'file') {
        delete vars.AWS_CONTAINER_AUTHORIZATION_TOKEN;
        vars.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = tokenFile(ws);
      }
      return { ...env, ...vars, ...o.extra };
    },
    async putObject(key, body) {
      await (await s3()).send(new PutObjectCommand({ Bucket: moto.bucket, Key: key, Body: body }));
    },
    async getObject(key) {
      const out = await (await s3()).send(new GetObjectCommand({ Bucket: moto.bucket, Key: key }));
      return (await out.Body?.transformToString()) ?? '';
    },
    async listKeys(prefix) {
      const out = await (await s3()).send(new ListObjectsV2Command({ Bucket: moto.bucket, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
    },
    scratch(name) {
      const dir = join(home.root, 'scratch', name);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
}
