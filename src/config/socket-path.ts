/**
 * A Unix socket address for a path of any length. Linux keeps at most 107 bytes of a socket's
 * path (sun_path), and a data directory deep in a home or a test tree can be longer. Then the
 * directory is opened and the socket is named through /proc/self/fd/<fd>/<name>, a short path
 * that leads to the same place (systemd does the same); the descriptor stays open until
 * release(). A short path is used as it is.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export const MAX_SOCKET_PATH_BYTES = 107;

export interface SocketAddress {
  /** What to bind or connect to. */
  readonly path: string;
  /** Close the directory descriptor, if one was opened. */
  release(): void;
}

export function socketAddress(path: string): SocketAddress {
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES) return { path, release: () => undefined };
  const fd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  let open = true;
  return {
    path: `/proc/self/fd/${fd}/${basename(path)}`,
    release() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
