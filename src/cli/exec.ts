/**
 * `eodh-credd exec <ws> -- CMD ARGS…`: run a command with the workspace's variables (what `env`
 * prints) added to this environment, like `aws-vault exec`. The command's exit status is ours;
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to it, and when a signal ends it we end by the
 * same signal, so a shell or a scheduler sees exactly what the command did.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf } from './context.js';
import { tokenMode, workspaceVariables } from './env.js';
import { assertWorkspaceName } from './names.js';

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

export async function run(ctx: CliContext): Promise<number> {
  const [name, command, ...args] = ctx.args;
  const workspace = assertWorkspaceName(name);
  if (!command) throw new UserError('Give the command to run: eodh-credd exec <workspace> -- CMD ARGS…', EXIT.USAGE);
  const vars = workspaceVariables(configOf(ctx), ctx.env, workspace, tokenMode(ctx));
  // Whatever pointed elsewhere would shadow the daemon (every SDK reads these before the container endpoint).
  const env: Record<string, string | undefined> = { ...ctx.env };
  for (const shadowing of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
    delete env[shadowing];
  delete env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
  delete env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  Object.assign(env, Object.fromEntries(vars));

  const child = spawn(command, args, { env, stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            err.code === 'ENOENT'
              ? new UserError(`${command}: command not found.`, 127)
              : new UserError(`Cannot run ${command}: ${err.message}`, 126),
          ),
        );
        child.once('exit', (code, signal) => resolve({ code, signal }));
      },
    );
    if (signal) {
      // Die the way the command died: without our handlers, the default action of that signal.
      for (const s of FORWARDED) process.off(s, forward);
      process.kill(process.pid, signal);
      return 128 + (constants.signals[signal] ?? 0);
    }
    return code ?? EXIT.SOFTWARE;
  } finally {
    for (const signal of FORWARDED) process.off(signal, forward);
  }
}
