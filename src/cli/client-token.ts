/**
 * `eodh-credd client-token rotate <ws> [--grace DURATION]`: give a workspace a new local client
 * token. The new token's digest replaces the old one in the database and the token file is
 * replaced atomically, inside one transaction: if the file cannot be written, the database keeps
 * the old digest. The running daemon sees the change within a second (it polls PRAGMA
 * data_version). The previous token keeps working for the grace period (config
 * client_tokens.grace_seconds, default 15 min; --grace 0 ends it at once, for a token that may have
 * leaked), so processes given the token by value keep working until they are restarted (#15).
 * Clients that read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE pick up the new one on their next
 * fetch. The token itself is never printed.
 */
import type { Config } from '../config/load.js';
import { EXIT, UserError } from '../core/errors.js';
import { newClientToken, writeClientTokenFile } from '../store/client-tokens.js';
import { type CliContext, configOf, print, stringOption } from './context.js';
import { assertWorkspaceName } from './names.js';
import { openStore } from './open-store.js';
import { requireWorkspace } from './workspace.js';

export interface RotatedClientToken {
  readonly file: string;
  readonly previousId: string;
  readonly id: string;
  /** Until when the previous token works (ms since the epoch), or null when it stopped at once. */
  readonly previousUntil: number | null;
}

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "0", "90", "90s", "15m", "2h", "1d" in milliseconds (a bare number is seconds). */
export function parseDuration(text: string): number {
  const m = /^(\d{1,7})([smhd]?)$/.exec(text.trim());
  if (!m) throw new UserError(`--grace takes a duration such as 0, 90s, 15m or 2h, not "${text}".`, EXIT.USAGE);
  return Number(m[1]) * UNIT_MS[m[2] || 's']!;
}

export function rotateClientToken(
  config: Config,
  env: CliContext['env'],
  workspace: string,
  graceMs: number = config.client_tokens.grace_seconds * 1000,
  now: number = Date.now(),
): RotatedClientToken {
  const store = openStore(config, env);
  try {
    const record = requireWorkspace(store, workspace);
    const next = newClientToken();
    const previousUntil = graceMs > 0 ? now + graceMs : null;
    const file = store.transaction(() => {
      store.setClientToken(record.id, next.id, next.hash, previousUntil);
      return writeClientTokenFile(config.paths, workspace, next.token);
    });
    return { file, previousId: record.clientTokenId, id: next.id, previousUntil };
  } finally {
    store.close();
  }
}

export async function run(ctx: CliContext): Promise<number> {
  const workspace = assertWorkspaceName(ctx.args[0]);
  const grace = stringOption(ctx, 'grace');
  const config = configOf(ctx);
  const rotated = rotateClientToken(config, ctx.env, workspace, grace === undefined ? undefined : parseDuration(grace));
  print(
    ctx.stdout,
    `New client token for "${workspace}" (${rotated.previousId} -> ${rotated.id}) written to ${rotated.file}.`,
  );
  if (rotated.previousUntil === null) {
    print(ctx.stdout, 'The old token stops working within a second. Clients that read the token file need nothing;');
    print(ctx.stdout, `processes given the token by value must be restarted (eval "$(eodh-credd env ${workspace})").`);
  } else {
    print(
      ctx.stdout,
      `The old token keeps working until ${new Date(rotated.previousUntil).toISOString()}: restart processes given it by value before then (eval "$(eodh-credd env ${workspace})").`,
    );
  }
  return 0;
}
