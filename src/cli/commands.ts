/**
 * The eodh-credd command line, built with commander from the table in definitions.ts. `--help`,
 * `help <command>` and `--version` are answered by the parser and never run a command; an unknown
 * command or option gets the usage and a "did you mean". Errors meant for the user are one
 * sentence on stderr with a sysexits code; anything else is a bug and says so, still without a
 * stack trace unless EODH_CREDD_DEBUG is set.
 */
import { readFileSync } from 'node:fs';
import { CommanderError, Option, Command as Program } from 'commander';
import { EXIT, UserError } from '../core/errors.js';
import type { CliContext, OptionValue } from './context.js';
import { COMMANDS, type CommandSpec, GLOBAL_OPTIONS } from './definitions.js';
import { storageFailure } from './exit-code.js';

export type CliIo = Pick<CliContext, 'env' | 'stdin' | 'stdout' | 'stderr'>;

/** The package version, from the package.json above this file (dist/src/cli or src/cli). */
export function packageVersion(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'eodh-credd' && pkg.version) return pkg.version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}

/**
 * The global options may stand anywhere before a `--` (`eodh-credd env ws --config f`), as they
 * always could; commander would only see them before the command. Everything after `--` belongs
 * to `exec`'s command.
 */
function splitGlobal(argv: readonly string[]): { configFile: string | undefined; noColor: boolean; rest: string[] } {
  const rest: string[] = [];
  let configFile: string | undefined;
  let noColor = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (arg === '--config') {
      configFile = argv[++i];
      if (configFile === undefined) throw new UserError('--config needs a file.', EXIT.USAGE);
    } else if (arg.startsWith('--config=')) configFile = arg.slice('--config='.length);
    else if (arg === '--no-color' || arg === '--no-colour') noColor = true;
    else rest.push(arg);
  }
  return { configFile, noColor, rest };
}

function example(spec: CommandSpec): string {
  const lines = spec.details ? [spec.details, ''] : [];
  if (spec.examples?.length) lines.push(spec.examples.length > 1 ? 'Examples:' : 'Example:');
  for (const e of spec.examples ?? []) lines.push(`  $ ${e}`);
  return lines.length ? `\n${lines.join('\n')}` : '';
}

type Runner = (spec: CommandSpec, args: string[], options: Record<string, OptionValue>) => Promise<void>;

function define(parent: Program, spec: CommandSpec, runner: Runner): void {
  const command = parent.command(spec.name).description(spec.summary);
  for (const a of spec.arguments ?? []) {
    command.argument(a.name, a.description);
    if (a.choices) {
      const argument = command.registeredArguments.at(-1);
      argument?.choices(a.choices);
    }
  }
  for (const o of spec.options ?? []) {
    const option = new Option(o.flags, o.description);
    if (o.choices) option.choices(o.choices);
    if (o.default !== undefined) option.default(o.default);
    command.addOption(option);
  }
  const after = example(spec);
  if (after) command.addHelpText('after', after);
  if (spec.subcommands) {
    for (const sub of spec.subcommands) define(command, sub, runner);
    return;
  }
  command.action(async (...params: unknown[]) => {
    const self = params.at(-1) as Program;
    const args = self.processedArgs.flatMap((a: unknown) =>
      Array.isArray(a) ? a.map(String) : a === undefined ? [] : [String(a)],
    );
    await runner(spec, args, self.opts());
  });
}

export function buildProgram(io: Pick<CliIo, 'stdout' | 'stderr'>, runner: Runner): Program {
  const output = {
    writeOut: (s: string) => io.stdout.write(s),
    writeErr: (s: string) => io.stderr.write(s),
    outputError: (s: string, write: (s: string) => void) => write(s.replace(/^error: /, 'eodh-credd: ')),
  };
  const program = new Program('eodh-credd')
    .description('Keeps UK EO DataHub workspace keys and S3 credentials fresh, and serves them to AWS clients.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .showHelpAfterError(true)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput(output);
  for (const o of GLOBAL_OPTIONS) program.option(o.flags, o.description);
  program.addHelpText(
    'after',
    [
      '',
      'Run "eodh-credd help <command>" or "eodh-credd <command> --help" for its options and an example.',
      'Start: eodh-credd init, then printf %s "$KEY" | eodh-credd workspace add <ws> --token-id <id>,',
      '       then eval "$(eodh-credd env <ws>)".',
    ].join('\n'),
  );
  for (const spec of COMMANDS) define(program, spec, runner);
  // Every command, at every level, reports errors and help the same way.
  const configure = (c: Program) => {
    c.exitOverride().showHelpAfterError(true).configureOutput(output);
    for (const sub of c.commands) configure(sub);
  };
  for (const c of program.commands) configure(c);
  return program;
}

function reportError(io: CliIo, err: unknown): number {
  const stored = storageFailure(err);
  if (stored) {
    io.stderr.write(`eodh-credd: ${stored.message}\n`);
    return stored.exitCode;
  }
  if (err instanceof UserError) {
    io.stderr.write(`eodh-credd: ${err.message}\n`);
    return err.exitCode;
  }
  io.stderr.write(`eodh-credd: internal error: ${(err as Error)?.message ?? String(err)}\n`);
  if (io.env.EODH_CREDD_DEBUG) io.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  return EXIT.SOFTWARE;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  let code: number = EXIT.OK;
  try {
    const { configFile, noColor, rest } = splitGlobal(argv);
    const colour = !noColor && !io.env.NO_COLOR;
    const program = buildProgram(io, async (spec, args, options) => {
      if (!spec.load) throw new Error(`no code for ${spec.name}`);
      const run = await spec.load();
      code = await run({ ...io, args, options, configFile, colour });
    });
    if (rest.length === 0) {
      io.stdout.write(program.helpInformation());
      return EXIT.USAGE;
    }
    await program.parseAsync(rest, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and the version on request are successes; everything else the parser refuses is a usage error.
      if (['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code))
        return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return EXIT.USAGE;
    }
    return reportError(io, err);
  }
}
