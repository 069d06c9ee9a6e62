/**
 * The account id of fresh credentials, from STS GetCallerIdentity signed with those credentials.
 * Newer SDKs use AccountId for account-based endpoints; it is optional in the container answer,
 * so this is best effort: one attempt, a short timeout, and a failure costs nothing but the field.
 */
import type { S3Credentials } from '../core/types.js';

export interface AccountIdOptions {
  /** Empty for the AWS default endpoint; tests point it at a local emulator. */
  readonly endpoint: string;
  readonly region: string;
  readonly timeoutMs: number;
}

export function accountIdLookup(options: AccountIdOptions) {
  return async (creds: S3Credentials): Promise<string | undefined> => {
    // Loaded on first use: the AWS SDK is a large share of start-up time and memory.
    const { GetCallerIdentityCommand, STSClient } = await import('@aws-sdk/client-sts');
    const client = new STSClient({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      credentials: {
        accessKeyId: creds.accessKeyId,
        secretAccessKey: creds.secretAccessKey,
        sessionToken: creds.sessionToken,
      },
      maxAttempts: 1,
    });
    try {
      const answer = await client.send(new GetCallerIdentityCommand({}), {
        abortSignal: AbortSignal.timeout(options.timeoutMs),
      });
      return answer.Account && /^\d{12}$/.test(answer.Account) ? answer.Account : undefined;
    } finally {
      client.destroy();
    }
  };
}
