/**
 * The bodies of the credential routes, field by field: only what is listed here goes out, so a
 * field added to an internal object can never leak into a response by accident (and the route's
 * response schema checks it again).
 */

import { rfc3339 } from '../core/time.js';
import type { ApiKey, S3Credentials } from '../core/types.js';

/** The container-credentials answer, exactly as botocore, JS v3, Go and Ruby read it. */
export interface ContainerCredentials {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly Token: string;
  readonly Expiration: string;
  readonly AccountId?: string;
}

export function containerCredentials(creds: S3Credentials): ContainerCredentials {
  return {
    AccessKeyId: creds.accessKeyId,
    SecretAccessKey: creds.secretAccessKey,
    Token: creds.sessionToken,
    Expiration: rfc3339(creds.expiresAt),
    ...(creds.accountId ? { AccountId: creds.accountId } : {}),
  };
}

export interface ApiKeyAnswer {
  readonly workspace: string;
  readonly tokenId: string | null;
  readonly token: string;
  readonly expiry: string | null;
}

export function apiKeyAnswer(workspace: string, key: ApiKey): ApiKeyAnswer {
  return {
    workspace,
    tokenId: key.tokenId,
    token: key.key,
    expiry: key.expiresAt === null ? null : rfc3339(key.expiresAt),
  };
}
