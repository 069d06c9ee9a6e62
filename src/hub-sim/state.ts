/**
 * The simulator's memory: API tokens, injected faults, settings and request counters. Plain data
 * and methods with an injected clock, so tests can drive it directly as well as over HTTP.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../core/types.js';

export interface SimToken {
  readonly id: string;
  readonly userId: string;
  readonly workspace: string;
  readonly name: string;
  readonly scope: string;
  /** The API key itself. */
  readonly token: string;
  readonly created: number;
  readonly expiry: number;
  revoked: boolean;
}

export const FAULT_MODES = [
  'none',
  'down',
  'error500',
  'slow',
  'garbage',
  'mint_unauthorized',
  'mint_forbidden',
  's3_forbidden',
  'rate_limited',
  'unavailable',
] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface Fault {
  readonly mode: FaultMode;
  /** For `slow`: how long to wait before answering. */
  readonly delayMs: number;
  /** How many more affected calls the fault applies to; null = until changed. */
  remaining: number | null;
  /** For `rate_limited` and `unavailable`: the Retry-After header sent ("1" unless set; "" for none). */
  readonly retryAfter: string;
}

/** One API call as the call log keeps it. */
export interface CallRecord {
  /** The simulator's clock when the call arrived. */
  readonly at: number;
  readonly workspace: string;
  readonly route: Route;
}

/** The call log keeps this many of the latest calls. */
const CALL_LOG_SIZE = 100_000;

/** The API routes, as the counters name them. */
export type Route = 's3Tokens' | 'listTokens' | 'mintTokens' | 'deleteTokens';

export interface Counters {
  s3Tokens: number;
  listTokens: number;
  mintTokens: number;
  deleteTokens: number;
  /** Requests refused with 401 because the bearer key is unknown, expired or revoked. */
  unauthorized: number;
}

export interface Stats {
  readonly total: Counters;
  readonly workspaces: Record<string, Counters>;
}

/**
 * Switches for what the real hub's token API may do (#11: the auth service that serves it is not
 * public), so the daemon can be tested against every combination.
 */
export interface Settings {
  s3LifetimeSeconds: number;
  /** false: minting with an API key is refused with 403 (the same as mintRefusedStatus = 403). */
  allowMintWithApiKey: boolean;
  /** Refuse GET …/me/tokens for API keys with this status (null: allowed). */
  listRefusedStatus: number | null;
  /** Refuse POST …/me/tokens for API keys with this status (null: allowed). */
  mintRefusedStatus: number | null;
  /** Refuse DELETE …/me/tokens/{id} for API keys with this status (null: allowed). */
  deleteRefusedStatus: number | null;
  /** The token list holds every workspace's keys of the user, not only {ws}'s. */
  listSpansWorkspaces: boolean;
  /** Mint only after this long (ms), then answer: past a client's timeout the key exists unseen. */
  mintDelayMs: number;
  /** Longest key lifetime the hub grants, in days (it clamps longer requests); null: as asked. */
  grantedKeyDays: number | null;
  /** Times as RFC 3339 ("…Z") or in Go's format ("2025-02-18 16:17:54 +0000 UTC"), as older hubs wrote. */
  timeFormat: 'rfc3339' | 'go';
  /** Error bodies as JSON or as text/plain "message\n" (the workspace services write the latter). */
  errorFormat: 'json' | 'text';
  /** How far the hub's clock (its Date header and the expiry times it mints) is ahead of the simulator's. */
  clockSkewMs: number;
}

export const DEFAULT_SETTINGS: Settings = {
  s3LifetimeSeconds: 3600,
  allowMintWithApiKey: true,
  listRefusedStatus: null,
  mintRefusedStatus: null,
  deleteRefusedStatus: null,
  listSpansWorkspaces: false,
  mintDelayMs: 0,
  grantedKeyDays: null,
  timeFormat: 'rfc3339',
  errorFormat: 'json',
  clockSkewMs: 0,
};

export interface SimStateOptions {
  readonly clock: Clock;
  readonly dayMs: number;
  readonly maxTokenDays: number;
  readonly settings: Settings;
}

export type AuthResult =
  | { readonly ok: true; readonly token: SimToken }
  | { readonly ok: false; readonly status: 401 | 403 };

const DEFAULT_SLOW_MS = 5_000;

function zeroCounters(): Counters {
  return { s3Tokens: 0, listTokens: 0, mintTokens: 0, deleteTokens: 0, unauthorized: 0 };
}

export class HubSimState {
  readonly clock: Clock;
  readonly dayMs: number;
  readonly maxTokenDays: number;
  readonly settings: Settings;
  /** The bucket GET /api/workspaces/{ws} names. */
  readonly workspaceBucket = 'workspaces-eodhp-sim';
  private readonly byId = new Map<string, SimToken>();
  private readonly byKey = new Map<string, SimToken>();
  private fault: Fault = { mode: 'none', delayMs: 0, remaining: null, retryAfter: '1' };
  private callLog: CallRecord[] = [];
  private garbageTurn = 0;
  private readonly total = zeroCounters();
  private readonly perWorkspace = new Map<string, Counters>();
  private readonly waiting = new Map<keyof Counters, Array<() => void>>();

  constructor(options: SimStateOptions) {
    this.clock = options.clock;
    this.dayMs = options.dayMs;
    this.maxTokenDays = options.maxTokenDays;
    this.settings = { ...options.settings };
  }

  createToken(input: {
    workspace: string;
    userId: string;
    name: string;
    scope?: string;
    lifetimeMs: number;
  }): SimToken {
    const created = this.clock.now();
    const token: SimToken = {
      id: randomUUID(),
      userId: input.userId,
      workspace: input.workspace,
      name: input.name,
      scope: input.scope ?? `offline_access workspace:${input.workspace}`,
      token: randomBytes(32).toString('base64url'),
      created,
      expiry: created + input.lifetimeMs,
      revoked: false,
    };
    this.byId.set(token.id, token);
    this.byKey.set(token.token, token);
    return token;
  }

  isExpired(token: SimToken): boolean {
    return this.clock.now() >= token.expiry;
  }

  /** The bearer check every API call makes: 401 for an unknown, expired or revoked key, 403 for another workspace's key. */
  authenticate(key: string | null, workspace: string): AuthResult {
    const token = key === null ? undefined : this.byKey.get(key);
    if (!token || token.revoked || this.isExpired(token)) {
      this.count(workspace, 'unauthorized');
      return { ok: false, status: 401 };
    }
    if (token.workspace !== workspace) return { ok: false, status: 403 };
    return { ok: true, token };
  }

  /**
   * The caller's live (not revoked) tokens in a workspace, oldest first; expired ones are still
   * listed. With listSpansWorkspaces, those of every workspace of the user.
   */
  tokensOf(workspace: string, userId: string): SimToken[] {
    const spans = this.settings.listSpansWorkspaces;
    return [...this.byId.values()].filter(
      (t) => (spans || t.workspace === workspace) && t.userId === userId && !t.revoked,
    );
  }

  /** Every token ever made, for orphan checks in tests. */
  allTokens(): SimToken[] {
    return [...this.byId.values()];
  }

  /** Revoke one of the caller's tokens; false when there is no such live token. */
  revoke(workspace: string, userId: string, id: string): boolean {
    const token = this.byId.get(id);
    const spans = this.settings.listSpansWorkspaces;
    if (!token || token.revoked || (!spans && token.workspace !== workspace) || token.userId !== userId) return false;
    token.revoked = true;
    return true;
  }

  setFault(mode: FaultMode, options: { delayMs?: number; count?: number; retryAfter?: string } = {}): void {
    this.fault = {
      mode,
      delayMs: options.delayMs ?? DEFAULT_SLOW_MS,
      remaining: mode === 'none' ? null : (options.count ?? null),
      retryAfter: options.retryAfter ?? '1',
    };
  }

  /** The hub's clock: the simulator's, shifted by the clockSkewMs setting. */
  hubNow(): number {
    return this.clock.now() + this.settings.clockSkewMs;
  }

  /** Record an API call (faulted or not) in the call log. */
  logCall(workspace: string, route: Route): void {
    this.callLog.push({ at: this.clock.now(), workspace, route });
    if (this.callLog.length > CALL_LOG_SIZE) this.callLog = this.callLog.slice(-CALL_LOG_SIZE / 2);
  }

  /** The latest API calls, oldest first. */
  calls(): CallRecord[] {
    return [...this.callLog];
  }

  currentFault(): Readonly<Fault> {
    return { ...this.fault };
  }

  /**
   * The fault to apply to a call on `route`, if any. A fault with a count is used up only by the
   * calls it affects (mint_unauthorized does not count s3-token calls), then reverts to none.
   */
  takeFault(route: Route | null): Fault | null {
    const fault = this.fault;
    if (fault.mode === 'none' || !affects(fault.mode, route)) return null;
    if (fault.remaining !== null) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.setFault('none');
    }
    return fault;
  }

  /** `garbage` alternates between a body that is not JSON and JSON missing every expected field. */
  nextGarbageIsText(): boolean {
    return this.garbageTurn++ % 2 === 0;
  }

  count(workspace: string, counter: keyof Counters): void {
    this.total[counter] += 1;
    let mine = this.perWorkspace.get(workspace);
    if (!mine) {
      mine = zeroCounters();
      this.perWorkspace.set(workspace, mine);
    }
    mine[counter] += 1;
    const waiters = this.waiting.get(counter);
    this.waiting.delete(counter);
    for (const resolve of waiters ?? []) resolve();
  }

  /**
   * Resolves when the next request on `counter` arrives (before any fault delays it), so a test
   * can act while a call is in flight at the hub instead of sleeping and hoping it got there.
   */
  nextRequest(counter: keyof Counters): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.waiting.get(counter) ?? [];
      waiters.push(resolve);
      this.waiting.set(counter, waiters);
    });
  }

  stats(): Stats {
    const workspaces: Record<string, Counters> = {};
    for (const [ws, c] of this.perWorkspace) workspaces[ws] = { ...c };
    return { total: { ...this.total }, workspaces };
  }
}

function affects(mode: FaultMode, route: Route | null): boolean {
  switch (mode) {
    case 'mint_unauthorized':
    case 'mint_forbidden':
      return route === 'mintTokens';
    case 's3_forbidden':
      return route === 's3Tokens';
    default:
      return true;
  }
}
