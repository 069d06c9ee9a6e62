/**
 * What the hub lets a workspace's API key do, learned from its answers (#11). Whether an API key may
 * list, mint or delete keys is not documented: the token endpoints belong to an auth service whose
 * source is not public, and every known client that creates keys uses a browser login instead.
 * So each ability is "not yet known" until the hub has answered, then allowed or refused (with the
 * status the refusal came with).
 */

export const CAPABILITIES = ['list', 'mint', 'delete'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface CapabilityFact {
  readonly state: 'allowed' | 'refused';
  /** The HTTP status of the refusal. */
  readonly status?: number | undefined;
  /** When the hub last answered this way (epoch ms). */
  readonly at: number;
}

export type Capabilities = Partial<Record<Capability, CapabilityFact>>;

/** Read stored capabilities, ignoring anything that is not a well-formed fact. */
export function parseCapabilities(json: string): Capabilities {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return {};
  }
  const out: Record<string, CapabilityFact> = {};
  if (!raw || typeof raw !== 'object') return out;
  for (const name of CAPABILITIES) {
    const fact = (raw as Record<string, unknown>)[name] as Partial<CapabilityFact> | undefined;
    if (!fact || (fact.state !== 'allowed' && fact.state !== 'refused') || typeof fact.at !== 'number') continue;
    out[name] = {
      state: fact.state,
      at: fact.at,
      ...(typeof fact.status === 'number' ? { status: fact.status } : {}),
    };
  }
  return out;
}

/** "list: allowed, mint: refused (405), delete: not yet known". */
export function describeCapabilities(caps: Capabilities): string {
  return CAPABILITIES.map((name) => `${name}: ${describeCapability(caps[name])}`).join(', ');
}

export function describeCapability(fact: CapabilityFact | undefined): string {
  if (!fact) return 'not yet known';
  return fact.state === 'allowed' ? 'allowed' : `refused${fact.status === undefined ? '' : ` (${fact.status})`}`;
}

/** The workspace's object store, from GET /api/workspaces/{ws} (best effort). */
export interface StorageFacts {
  readonly bucket: string | null;
  readonly prefix: string | null;
}
