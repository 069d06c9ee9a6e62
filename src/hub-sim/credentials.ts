/**
 * How the simulator mints temporary S3 credentials: random strings shaped like AWS ones, or real
 * ones from an STS emulator (moto) so that S3 calls made with them succeed end to end.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { Clock } from '../core/types.js';

export interface StsOptions {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly roleArn: string;
}

/** The hub's s3-tokens answer. */
export interface S3Answer {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: string;
}

export interface S3Minter {
  mint(workspace: string, userId: string, lifetimeSeconds: number): Promise<S3Answer>;
  close(): void;
}

/** RFC 3339 UTC at second precision, as the hub writes it: "2025-02-18T16:57:23Z". */
export function rfc3339Seconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomFrom(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

export function randomMinter(clock: Clock): S3Minter {
  return {
    async mint(_workspace, _userId, lifetimeSeconds) {
      return {
        accessKeyId: `ASIA${randomFrom(UPPER_ALNUM, 16)}`,
        secretAccessKey: randomBytes(30).toString('base64'),
        sessionToken: randomBytes(300).toString('base64'),
        expiration: rfc3339Seconds(clock.now() + lifetimeSeconds * 1000),
      };
    },
    close() {},
  };
}

/** STS allows [\w+=,.@-]{2,64} in a session name. */
function sessionName(workspace: string, userId: string): string {
  return `${workspace}-${userId}`
    .replace(/[^\w+=,.@-]/g, '_')
    .slice(0, 64)
    .padEnd(2, '_');
}

export function stsMinter(options: StsOptions): S3Minter {
  const client = new STSClient({
    endpoint: options.endpoint,
    region: options.region,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
  });
  return {
    async mint(workspace, userId, lifetimeSeconds) {
      const answer = await client.send(
        new AssumeRoleCommand({
          RoleArn: options.roleArn,
          RoleSessionName: sessionName(workspace, userId),
          DurationSeconds: lifetimeSeconds,
        }),
      );
      const c = answer.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
        throw new Error('STS AssumeRole returned no credentials');
      }
      return {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        sessionToken: c.SessionToken,
        expiration: rfc3339Seconds(c.Expiration.getTime()),
      };
    },
    close() {
      client.destroy();
    },
  };
}
