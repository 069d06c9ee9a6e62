/**
 * `eodh-credd credential-process <ws>`: the workspace's S3 credential from the running daemon, in
 * the `credential_process` format of ~/.aws/config (AWS CLI, boto3, the SDKs), for tools that
 * read profiles but not the container endpoint. The credential comes from the daemon (with the
 * workspace's client token file), never from the database, so the daemon stays the one place
 * that renews. When the daemon is down: a one-line reason on stderr and a non-zero exit, which
 * the SDKs show to the user.
 */

import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf, print } from './context.js';
import { callDaemon, errorMessage } from './daemon-client.js';
import { assertWorkspaceName } from './names.js';
import { clientToken } from './workspace-token.js';

/** What the container endpoint answers (see server/schemas.ts). */
interface Served {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly Token: string;
  readonly Expiration: string;
}

/** The credential_process document: note `SessionToken`, where the container answer says `Token`. */
export function processDocument(served: Served): string {
  return JSON.stringify({
    Version: 1,
    AccessKeyId: served.AccessKeyId,
    SecretAccessKey: served.SecretAccessKey,
    SessionToken: served.Token,
    Expiration: served.Expiration,
  });
}

function isServed(body: unknown): body is Served {
  const b = body as Partial<Record<keyof Served, unknown>> | null;
  return (
    !!b && [b.AccessKeyId, b.SecretAccessKey, b.Token, b.Expiration].every((v) => typeof v === 'string' && v !== '')
  );
}

export async function run(ctx: CliContext): Promise<number> {
  const workspace = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const token = await clientToken(config, ctx.env, workspace);
  const answer = await callDaemon(config, `/v1/workspaces/${workspace}/credentials`, { token });
  if (answer.status !== 200) {
    throw new UserError(
      `The daemon gave no credential for workspace "${workspace}" (${answer.status}): ${errorMessage(answer.body)}`,
      EXIT.UNAVAILABLE,
    );
  }
  if (!isServed(answer.body))
    throw new UserError('The daemon answered without a complete credential.', EXIT.UNAVAILABLE);
  print(ctx.stdout, processDocument(answer.body));
  return 0;
}
