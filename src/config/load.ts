/**
 * TOML file → validated, frozen Config. A missing default file means "all defaults"; a file named
 * explicitly (--config, EODH_CREDD_CONFIG) must exist. Every error names the file and the key.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { validateDetailed } from 'node-cron';
import { parse, TomlError } from 'smol-toml';
import { safeParse } from 'valibot';
import { EXIT, UserError } from '../core/errors.js';
import { type DataPaths, dataPaths, defaultConfigFile, defaultDataDir } from './paths.js';
import { type ConfigFile, ConfigSchema } from './schema.js';

export interface Config extends ConfigFile {
  readonly file: string;
  readonly fileExists: boolean;
  readonly paths: DataPaths;
}

export interface ConfigSource {
  /** --config on the command line. */
  readonly explicitFile?: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function resolveConfigFile(source: ConfigSource): { file: string; explicit: boolean } {
  const named = source.explicitFile ?? source.env.EODH_CREDD_CONFIG;
  if (named) return { file: resolve(named), explicit: true };
  return { file: defaultConfigFile(source.env), explicit: false };
}

export function loadConfig(source: ConfigSource): Config {
  const { file, explicit } = resolveConfigFile(source);
  let text: string | null = null;
  let fd: number | undefined;
  try {
    // Non-blocking, so a FIFO put in its place cannot hang the daemon; fstat says what was opened.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    assertConfigTrusted(file, fstatSync(fd));
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || explicit) {
      throw new UserError(`${file}: cannot read the configuration file (${code ?? 'error'}).`, EXIT.CONFIG);
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return parseConfig(text ?? '', file, source.env, text !== null);
}

const modeText = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * The configuration says where the data lives and which STS endpoint gets the credentials, so a
 * file someone else can change is refused (#12), as sshd refuses such a config: it must be a
 * regular file owned by us or root, writable by its owner only, in a directory others cannot
 * write to (a sticky directory such as /tmp is fine: others cannot replace our file there).
 */
export function assertConfigTrusted(file: string, stat: Stats): void {
  const me = process.getuid?.();
  if (!stat.isFile()) throw new UserError(`${file}: the configuration file is not a regular file.`, EXIT.CONFIG);
  if (me !== undefined && stat.uid !== me && stat.uid !== 0) {
    throw new UserError(
      `${file}: the configuration file belongs to another user (uid ${stat.uid}); refusing it: use a file of your own.`,
      EXIT.NOPERM,
    );
  }
  if ((stat.mode & 0o022) !== 0) {
    throw new UserError(
      `${file}: the configuration file is writable by other users (mode ${modeText(stat.mode)}); refusing it: run "chmod go-w ${file}".`,
      EXIT.NOPERM,
    );
  }
  const dir = dirname(file);
  const parent = statSync(dir);
  const sticky = (parent.mode & 0o1000) !== 0; // S_ISVTX
  if ((parent.mode & 0o022) !== 0 && !sticky) {
    throw new UserError(
      `${file}: the configuration file's directory is writable by other users (mode ${modeText(parent.mode)}), who could replace it; refusing it: run "chmod go-w ${dir}".`,
      EXIT.NOPERM,
    );
  }
}

export function parseConfig(
  text: string,
  file: string,
  env: Readonly<Record<string, string | undefined>>,
  fileExists = true,
): Config {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      throw new UserError(`${file}:${err.line}:${err.column}: invalid TOML: ${firstLine(err.message)}`, EXIT.CONFIG);
    }
    throw err;
  }
  const result = safeParse(ConfigSchema, raw, { abortEarly: true });
  if (!result.success) {
    const [issue] = result.issues;
    const key = issue.path?.map((item) => String(item.key)).join('.') || '(top level)';
    // An issue about a key itself rather than its value: every key is optional, so an unknown one.
    const problem =
      issue.path?.at(-1)?.origin === 'key'
        ? `unknown key "${key}".`
        : `key "${key}": ${issue.message}, got ${JSON.stringify(issue.input) ?? 'nothing'}.`;
    throw new UserError(`${file}: ${problem}`, EXIT.CONFIG);
  }
  const parsed = result.output;
  const cron = validateDetailed(parsed.renewal.sweep_schedule);
  if (!cron.valid) {
    const why = cron.errors.map((e) => e.message).join('; ');
    throw new UserError(`${file}: key "renewal.sweep_schedule": not a cron expression (${why}).`, EXIT.CONFIG);
  }
  const dataDir = parsed.storage.data_dir
    ? isAbsolute(parsed.storage.data_dir)
      ? parsed.storage.data_dir
      : resolve(file, '..', parsed.storage.data_dir)
    : defaultDataDir(env);
  return deepFreeze({ ...parsed, file, fileExists, paths: dataPaths(dataDir) });
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
