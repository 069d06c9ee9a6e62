/** A small client for the simulator's /_sim/ control routes, for tests and the demo. */
import type { CallRecord, Fault, FaultMode, Settings, Stats } from './state.js';

/** A token as the API returns it right after creation. */
export interface SimKey {
  readonly id: string;
  readonly user_id: string;
  readonly workspace: string;
  readonly name: string;
  readonly scope: string;
  readonly created: string;
  readonly expiry: string;
  readonly token: string;
}

/** A token as GET /_sim/tokens lists it: no key, plus its state. */
export type SimTokenInfo = Omit<SimKey, 'token'> & { readonly revoked: boolean; readonly expired: boolean };

export interface CreateKeyOptions {
  readonly name?: string;
  readonly expiresDays?: number;
  /** Overrides expiresDays; may be negative to make a key that has already expired. */
  readonly expiresInMs?: number;
  readonly user?: string;
}

export class HubSimulatorClient {
  private readonly base: string;

  constructor(baseUrl: string) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  createKey(workspace: string, options: CreateKeyOptions = {}): Promise<SimKey> {
    return this.call('POST', `/_sim/workspaces/${encodeURIComponent(workspace)}/tokens`, options);
  }

  tokens(): Promise<SimTokenInfo[]> {
    return this.call('GET', '/_sim/tokens');
  }

  setFault(mode: FaultMode, options: { delayMs?: number; count?: number; retryAfter?: string } = {}): Promise<Fault> {
    return this.call('PUT', '/_sim/faults', { mode, ...options });
  }

  settings(settings: Partial<Settings>): Promise<Settings> {
    return this.call('PUT', '/_sim/settings', settings);
  }

  stats(): Promise<Stats> {
    return this.call('GET', '/_sim/stats');
  }

  /** The latest API calls with the simulator's time of each, oldest first. */
  calls(): Promise<CallRecord[]> {
    return this.call('GET', '/_sim/calls');
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`hub simulator: ${method} ${path} answered ${response.status}`);
    return (await response.json()) as T;
  }
}
