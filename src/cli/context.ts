/** What every command gets: arguments, options, environment, streams, and a helper to read the config. */
import type { Readable, Writable } from 'node:stream';
import { type Config, loadConfig } from '../config/load.js';

export type OptionValue = string | boolean | string[] | undefined;

export interface CliContext {
  /** The command's arguments, in order (a variadic last argument is spread). */
  readonly args: string[];
  /** Its options as parsed (camelCase: --token-id is tokenId). */
  readonly options: Readonly<Record<string, OptionValue>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /** --config, when given before or after the command. */
  readonly configFile: string | undefined;
  /** False with --no-color or NO_COLOR; otherwise colour goes to terminals only (see colourFor). */
  readonly colour: boolean;
}

export function configOf(ctx: Pick<CliContext, 'configFile' | 'env'>): Config {
  return loadConfig({ explicitFile: ctx.configFile, env: ctx.env });
}

/** Whether to colour what goes to this stream: a terminal, and neither --no-color nor NO_COLOR (no-color.org). */
export function colourFor(ctx: Pick<CliContext, 'colour'>, stream: { isTTY?: boolean }): boolean {
  return ctx.colour && stream.isTTY === true;
}

export function stringOption(ctx: Pick<CliContext, 'options'>, name: string): string | undefined {
  const value = ctx.options[name];
  return typeof value === 'string' ? value : undefined;
}

export function print(stream: Writable, text = ''): void {
  stream.write(`${text}\n`);
}
