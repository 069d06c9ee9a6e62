/**
 * Who is on the other end of a TCP connection (#12). Loopback is shared by every user of the
 * machine, so a client token alone would let any local user who read it fetch the credentials.
 * Linux lists every TCP socket of the network namespace with its owner's uid in /proc/net/tcp and
 * /proc/net/tcp6; the client's socket is the row whose local end is the connection's remote end and
 * whose remote end is ours. Looked up once per connection (the answer is kept on the socket, so
 * keep-alive requests cost nothing).
 *
 * A row that cannot be found (a client in another network namespace, a socket already gone, a
 * kernel without /proc) gives null: the caller refuses loopback connections it cannot attribute.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';

/** One 32-bit word as the kernel prints it (%08X of the value in host byte order). */
function wordHex(bytes: readonly number[]): string {
  const ordered = LITTLE_ENDIAN ? [...bytes].reverse() : bytes;
  return ordered
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

function ipv4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

function ipv6Bytes(address: string): number[] {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (v4?.[1]) {
    tail = ipv4Bytes(v4[1]);
    text = `${text.slice(0, -v4[1].length)}0:0`;
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest === undefined ? [] : rest ? rest.split(':') : [];
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...restGroups];
  const bytes = groups.flatMap((g) => {
    const n = Number.parseInt(g || '0', 16);
    return [n >> 8, n & 0xff];
  });
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** An endpoint as it appears in the table: address words, a colon, the port in 4 hex digits. */
export function endpointHex(address: string, port: number): string {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  if (isIPv4(address)) return `${wordHex(ipv4Bytes(address))}:${portHex}`;
  const bytes = ipv6Bytes(address);
  let words = '';
  for (let i = 0; i < 16; i += 4) words += wordHex(bytes.slice(i, i + 4));
  return `${words}:${portHex}`;
}

/**
 * The uid owning the socket whose local end is `client` and remote end is `server`, from the text
 * of a /proc/net/tcp{,6} table; null when there is no such row or it belongs to no process (a
 * socket already closed by its owner, or in TIME_WAIT, shows inode 0).
 */
export function uidFromTable(table: string, client: string, server: string): number | null {
  const needle = ` ${client} ${server} `;
  for (let at = table.indexOf(needle); at >= 0; at = table.indexOf(needle, at + 1)) {
    const lineEnd = table.indexOf('\n', at);
    // After the two endpoints: st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    const fields = table
      .slice(at, lineEnd < 0 ? undefined : lineEnd)
      .trim()
      .split(/\s+/);
    const uid = Number(fields[6]);
    const inode = fields[8];
    if (Number.isInteger(uid) && inode !== undefined && inode !== '0') return uid;
  }
  return null;
}

export interface ConnectionEnds {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

export type TableFile = '/proc/net/tcp' | '/proc/net/tcp6';
/** Reads a table; injectable for tests. */
export type TableReader = (file: TableFile) => Promise<string>;

/**
 * Reading a table walks the kernel's whole established-connections hash, which takes milliseconds
 * to tens of milliseconds on a large machine whatever the number of sockets (README, Benchmarks).
 * So reads run off the event loop, and connections that arrive together share one: a caller gets
 * the next read that starts after its call (its socket was accepted before, so its row is in it).
 */
export function coalescingReader(read: (file: TableFile) => Promise<string>): TableReader {
  const state = new Map<TableFile, { running: Promise<string> | null; next: Promise<string> | null }>();
  return (file) => {
    let s = state.get(file);
    if (!s) {
      s = { running: null, next: null };
      state.set(file, s);
    }
    const slot = s;
    const start = (): Promise<string> => {
      const running = read(file).finally(() => {
        if (slot.running === running) slot.running = null;
      });
      slot.running = running;
      return running;
    };
    if (!slot.running) return start();
    slot.next ??= slot.running.then(
      () => {
        slot.next = null;
        return start();
      },
      () => {
        slot.next = null;
        return start();
      },
    );
    return slot.next;
  };
}

const procReader: TableReader = coalescingReader((file) => readFile(file, 'latin1').catch(() => ''));

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The uid of the process that owns the client end of this connection, or null when unknown. */
export async function lookupPeerUid(ends: ConnectionEnds, read: TableReader = procReader): Promise<number | null> {
  const { remoteAddress, remotePort, localAddress, localPort } = ends;
  if (!remoteAddress || !localAddress || remotePort === undefined || localPort === undefined) return null;
  const candidates: Array<[TableFile, string, string]> = [];
  const mappedRemote = V4_MAPPED.exec(remoteAddress)?.[1];
  const mappedLocal = V4_MAPPED.exec(localAddress)?.[1];
  if (isIPv4(remoteAddress) && isIPv4(localAddress)) {
    candidates.push(['/proc/net/tcp', remoteAddress, localAddress]);
  } else if (mappedRemote && mappedLocal) {
    // A dual-stack listener: the client may hold an IPv4 socket or an IPv6 one.
    candidates.push(['/proc/net/tcp', mappedRemote, mappedLocal]);
    candidates.push(['/proc/net/tcp6', remoteAddress, localAddress]);
  } else if (isIPv6(remoteAddress) && isIPv6(localAddress)) {
    candidates.push(['/proc/net/tcp6', remoteAddress, localAddress]);
  }
  for (const [file, client, server] of candidates) {
    const uid = uidFromTable(await read(file), endpointHex(client, remotePort), endpointHex(server, localPort));
    if (uid !== null) return uid;
  }
  return null;
}

const PEER_UID = Symbol('eodh-credd.peerUid');

interface Tagged {
  /** The answer once known; the lookup while it runs. */
  [PEER_UID]?: number | null | Promise<number | null>;
}

/**
 * The peer's uid, looked up once per connection: started when the connection is accepted (so the
 * read overlaps with the client sending its request), kept on the socket for its later requests.
 */
export class PeerUids {
  constructor(private readonly read: TableReader = procReader) {}

  /** Starts the lookup for a new connection (idempotent). */
  lookup(socket: ConnectionEnds & object): Promise<number | null> | number | null {
    const tagged = socket as Tagged;
    const known = tagged[PEER_UID];
    if (known !== undefined) return known;
    const pending = lookupPeerUid(socket, this.read).then(
      (uid) => {
        tagged[PEER_UID] = uid;
        return uid;
      },
      () => {
        tagged[PEER_UID] = null;
        return null;
      },
    );
    tagged[PEER_UID] = pending;
    return pending;
  }

  /** The answer if the lookup has finished, else undefined. */
  known(socket: ConnectionEnds & object): number | null | undefined {
    const value = (socket as Tagged)[PEER_UID];
    return value instanceof Promise ? undefined : value;
  }
}
