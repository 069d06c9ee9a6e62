/**
 * Readiness and status for systemd (Type=notify): READY=1, RELOADING=1, STOPPING=1 and STATUS=.
 *
 * How the datagram gets to $NOTIFY_SOCKET: Node cannot send on a unix datagram socket (node:dgram
 * is UDP only), and the npm packages that can (sd-notify, unix-dgram) are native addons that need
 * libsystemd headers or a compiler at install time. systemd ships `systemd-notify`, which sends the
 * same message; run as our child it needs NotifyAccess=all in the unit (both units set it). By
 * default it waits until the manager has processed the message (a barrier), so the message is
 * attributed to the service even though the child exits right after. One child per message, only
 * when something changed: a few per minute at most.
 *
 * Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

export interface Notifier {
  /** Whether messages go anywhere (the service manager asked for them). */
  readonly enabled: boolean;
  ready(status?: string): Promise<void>;
  reloading(): Promise<void>;
  stopping(status?: string): Promise<void>;
  /** STATUS= line shown by `systemctl status`; sent only when it differs from the last one. */
  status(text: string): Promise<void>;
}

export interface NotifierOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger | undefined;
  /** The systemd-notify executable (tests may point at another). */
  readonly command?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

/** The STATUS= value on one line: systemd shows a single line, and a newline would start a new assignment. */
export function statusValue(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

export function systemdNotifier(options: NotifierOptions): Notifier {
  const socket = options.env.NOTIFY_SOCKET;
  const log = options.logger?.child({ module: 'notify' });
  const command = options.command ?? 'systemd-notify';
  const timeout = options.timeoutMs ?? 3_000;
  let lastStatus: string | undefined;
  let failed = false;
  // Messages go out one at a time, in order: READY=1 must not overtake the STATUS= before it.
  let queue: Promise<void> = Promise.resolve();

  const send = (assignments: string[]): Promise<void> => {
    if (!socket) return Promise.resolve();
    const next = queue.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(
            command,
            assignments,
            { env: { ...options.env, NOTIFY_SOCKET: socket }, timeout },
            (err, _stdout, stderr) => {
              if (err && !failed) {
                // Said once: a service that cannot report readiness is killed by systemd at TimeoutStartSec=.
                failed = true;
                log?.error({ err: { message: err.message }, stderr: String(stderr).trim() }, 'systemd-notify failed');
              }
              resolve();
            },
          );
        }),
    );
    queue = next;
    return next;
  };

  return {
    enabled: Boolean(socket),
    ready(status) {
      if (status !== undefined) lastStatus = statusValue(status);
      return send(['READY=1', ...(status === undefined ? [] : [`STATUS=${statusValue(status)}`])]);
    },
    reloading() {
      return send(['RELOADING=1']);
    },
    stopping(status) {
      return send(['STOPPING=1', ...(status === undefined ? [] : [`STATUS=${statusValue(status)}`])]);
    },
    status(text) {
      const value = statusValue(text);
      if (value === lastStatus) return Promise.resolve();
      lastStatus = value;
      return send([`STATUS=${value}`]);
    },
  };
}
