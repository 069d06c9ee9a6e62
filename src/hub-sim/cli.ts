/**
 * `eodh-credd hub-sim`: run the hub simulator in the foreground on loopback, print its URL on one
 * line (so scripts can read it), and stop on SIGINT/SIGTERM.
 */
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { EXIT, UserError } from '../core/errors.js';
import { type HubSimulatorOptions, startHubSimulator } from './app.js';

const USAGE =
  'usage: eodh-credd hub-sim [--port N] [--s3-lifetime SECONDS] [--day-ms N] [--sts-endpoint URL --role-arn ARN [--sts-region R]]';

export interface HubSimCliIo {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly write?: (line: string) => void;
  /** Stops the simulator instead of a signal (tests). */
  readonly signal?: AbortSignal;
}

function integer(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UserError(`--${name} must be a whole number from ${min} to ${max}.\n${USAGE}`, EXIT.USAGE);
  }
  return n;
}

/** `argv` holds the arguments after "hub-sim". */
export function parseHubSimArgs(
  argv: string[],
  env: Readonly<Record<string, string | undefined>>,
): HubSimulatorOptions & { port: number; help: boolean } {
  // biome-ignore lint/suspicious/noImplicitAnyLet: parseArgs infers the type from its options below
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        's3-lifetime': { type: 'string' },
        'day-ms': { type: 'string' },
        'sts-endpoint': { type: 'string' },
        'sts-region': { type: 'string' },
        'role-arn': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UserError(`${(err as Error).message}\n${USAGE}`, EXIT.USAGE);
  }
  const options: HubSimulatorOptions & { port: number; help: boolean } = {
    port: integer('port', values.port, 0, 65535) ?? 0,
    help: values.help === true,
    ...optional('s3LifetimeSeconds', integer('s3-lifetime', values['s3-lifetime'], 1, 129_600)),
    ...optional('dayMs', integer('day-ms', values['day-ms'], 1, 86_400_000 * 365)),
  };
  const endpoint = values['sts-endpoint'];
  const roleArn = values['role-arn'];
  if ((endpoint === undefined) !== (roleArn === undefined)) {
    throw new UserError(`--sts-endpoint and --role-arn go together.\n${USAGE}`, EXIT.USAGE);
  }
  if (endpoint !== undefined && roleArn !== undefined) {
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new UserError(
        '--sts-endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment.',
        EXIT.CONFIG,
      );
    }
    const region = values['sts-region'] ?? env.AWS_REGION ?? 'eu-west-2';
    return { ...options, sts: { endpoint, region, roleArn, accessKeyId, secretAccessKey } };
  }
  return options;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}

export async function runHubSim(argv: string[], io: HubSimCliIo = {}): Promise<void> {
  const write = io.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const options = parseHubSimArgs(argv, io.env ?? process.env);
  if (options.help) {
    write(USAGE);
    return;
  }
  const sim = await startHubSimulator(options);
  write(sim.url);
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const stopped = once(stop.signal, 'abort');
    if (io.signal) {
      if (io.signal.aborted) stop.abort();
      else io.signal.addEventListener('abort', onSignal, { once: true });
    }
    await stopped;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.signal?.removeEventListener('abort', onSignal);
    await sim.close();
  }
}
