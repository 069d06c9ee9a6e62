/**
 * Seeding many workspaces straight through the Store API (what `workspace add` stores, without
 * asking the hub for each one): adding a thousand through the CLI would take minutes. Everything
 * goes in one transaction; secrets are sealed exactly as the CLI seals them.
 */
import { randomBytes } from 'node:crypto';
import type { DataPaths } from '../src/config/paths.js';
import type { ApiKey, S3Credentials } from '../src/core/types.js';
import { newClientToken, writeClientTokenFile } from '../src/store/client-tokens.js';
import type { Store } from '../src/store/store.js';

export interface SeededWorkspace {
  readonly name: string;
  /** The client token, as AWS_CONTAINER_AUTHORIZATION_TOKEN would carry it. */
  readonly token: string;
}

export interface SeedOptions {
  readonly count: number;
  readonly hubUrl: string;
  /** Workspace names are `<prefix>-<index>`. */
  readonly prefix?: string;
  /** The API key stored for workspace i; a random one (the hub would refuse it) by default. */
  readonly apiKey?: (name: string, i: number) => ApiKey;
  /** The cached S3 credential of workspace i; null for none. */
  readonly s3?: (name: string, i: number) => S3Credentials | null;
  /** Also write each client token file, as `workspace add` does (the daemon never reads them). */
  readonly paths?: DataPaths;
}

export function workspaceName(prefix: string, i: number): string {
  return `${prefix}-${String(i).padStart(5, '0')}`;
}

/** Credentials shaped like the hub's (sizes as the hub simulator mints them), issued `ageMs` ago. */
export function fakeS3(now: number, options: { ageMs?: number; lifetimeMs?: number } = {}): S3Credentials {
  const issuedAt = now - (options.ageMs ?? 0);
  return {
    accessKeyId: `ASIA${randomBytes(10).toString('hex').toUpperCase().slice(0, 16)}`,
    secretAccessKey: randomBytes(30).toString('base64'),
    sessionToken: randomBytes(300).toString('base64'),
    issuedAt,
    expiresAt: issuedAt + (options.lifetimeMs ?? 3_600_000),
  };
}

export function seedWorkspaces(store: Store, options: SeedOptions): SeededWorkspace[] {
  const prefix = options.prefix ?? 'bench';
  const seeded: SeededWorkspace[] = [];
  store.transaction(() => {
    for (let i = 0; i < options.count; i++) {
      const name = workspaceName(prefix, i);
      const client = newClientToken();
      store.addWorkspace({
        name,
        hubUrl: options.hubUrl,
        region: 'eu-west-2',
        clientTokenId: client.id,
        clientTokenHash: client.hash,
        apiKey: options.apiKey?.(name, i) ?? {
          tokenId: null,
          key: randomBytes(32).toString('base64url'),
          expiresAt: null,
        },
        s3: options.s3?.(name, i) ?? null,
      });
      if (options.paths) writeClientTokenFile(options.paths, name, client.token);
      seeded.push({ name, token: client.token });
    }
  });
  return seeded;
}
