/**
 * The file sink: for tools that cannot use the container endpoint (GDAL before 3.9 and so QGIS and
 * rasterio builds on it, old SDKs), keep a named profile `[eodh-<ws>]` in an AWS shared-credentials
 * file up to date on every renewal. Opt-in per workspace (`eodh-credd workspace sink`).
 *
 * The file is the user's: every other profile, comment, blank line and line ending stays exactly
 * as it was. So this is not an INI library (those normalise what they write back) but a small
 * editor that finds our section's lines and replaces only those. The file is written atomically
 * (temp file in the same directory, fsync, rename) with mode 0600, and left alone when nothing
 * changes.
 *
 * Files others can touch are refused (#12), since the file is written with the daemon's rights
 * and read back on every renewal:
 * - a symlink is followed only when we own it (a dotfiles setup); one owned by anyone else is
 *   refused, and the file itself is opened with O_NOFOLLOW, so a link swapped in later is too;
 * - the file must be a regular file of our own: a FIFO, a device, a socket or a directory is
 *   refused, and it is opened with O_NONBLOCK and checked with fstat, so a FIFO never blocks the
 *   event loop;
 * - the directory it is in, and every directory above it, must be owned by us or root and not
 *   writable by group or others, except a sticky one (such as /tmp): there nobody else can
 *   replace or remove our file, and a file someone else put there first is not ours, so refused.
 *
 * Sections follow what botocore's configparser and GDAL accept: a line whose first non-blank
 * character is `[` up to the matching `]` starts a section; it runs to the next such line. When
 * our section is replaced or removed, the comments and blank lines at its end stay: they usually
 * introduce the section that follows.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  type Stats,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { EXIT, UserError } from '../core/errors.js';
import { isServable } from '../core/policy.js';
import type { Clock, S3Credentials } from '../core/types.js';
import { replaceSecretFile } from '../store/files.js';
import type { WorkspaceRecord } from '../store/store.js';

/** The profile a workspace's credentials go under. */
export function profileName(workspace: string): string {
  return `eodh-${workspace}`;
}

/** Where the AWS tools look by default: $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials. */
export function defaultCredentialsFile(env: Readonly<Record<string, string | undefined>>): string {
  const explicit = env.AWS_SHARED_CREDENTIALS_FILE;
  if (explicit) return resolve(explicit.replace(/^~(?=$|\/)/, env.HOME || homedir()));
  return join(env.HOME || homedir(), '.aws', 'credentials');
}

// ---- the editor (pure) -------------------------------------------------------------------

interface Line {
  /** The line without its terminator. */
  readonly text: string;
  /** The line with its terminator ('\n', '\r\n' or '' for a last line without one). */
  readonly raw: string;
}

interface Section {
  /** Trimmed name between the brackets. */
  readonly name: string;
  /** Index of the header line. */
  readonly start: number;
  /** Index after the section's last line that belongs to it (trailing comments/blanks excluded). */
  readonly end: number;
}

function splitLines(text: string): Line[] {
  const raws = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  return raws.map((raw) => ({ raw, text: raw.replace(/\r?\n$/, '') }));
}

const HEADER = /^\s*\[([^\]]*)\]/;
const isFiller = (text: string) => /^\s*([#;].*)?$/.test(text);

function sections(lines: readonly Line[]): Section[] {
  const starts: Array<{ name: string; start: number }> = [];
  lines.forEach((line, i) => {
    const m = HEADER.exec(line.text);
    if (m) starts.push({ name: m[1]!.trim(), start: i });
  });
  return starts.map(({ name, start }, k) => {
    let end = starts[k + 1]?.start ?? lines.length;
    // Comments and blank lines at the end belong to whatever follows.
    while (end > start + 1 && isFiller(lines[end - 1]!.text)) end--;
    return { name, start, end };
  });
}

function eolOf(text: string): string {
  const m = /\r?\n/.exec(text);
  return m ? m[0] : '\n';
}

/**
 * The file's text with `[profile]` holding exactly `body` (lines without terminators): replaced
 * in place where the profile exists (a duplicate of it is dropped), else appended after a blank
 * line. Everything else is kept byte for byte.
 */
export function setProfile(text: string, profile: string, body: readonly string[]): string {
  const eol = eolOf(text);
  const block = [`[${profile}]`, ...body].map((l) => `${l}${eol}`).join('');
  const lines = splitLines(text);
  const ours = sections(lines).filter((s) => s.name === profile);
  if (ours.length === 0) {
    let out = text;
    if (out.length > 0 && !out.endsWith('\n')) out += eol;
    const last = lines.at(-1);
    if (last && last.text.trim() !== '') out += eol;
    return out + block;
  }
  const [first, ...duplicates] = ours;
  const drop = new Set(duplicates.flatMap((s) => range(s.start, s.end)));
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    if (i === first!.start) out += block;
    if ((i >= first!.start && i < first!.end) || drop.has(i)) continue;
    out += lines[i]!.raw;
  }
  return out;
}

/**
 * The file's text without `[profile]` (every copy of it); `text` itself when it has none. A blank
 * line right before a removed section at the end of the file goes too (the one setProfile added).
 */
export function removeProfile(text: string, profile: string): string {
  const lines = splitLines(text);
  const ours = sections(lines).filter((s) => s.name === profile);
  if (ours.length === 0) return text;
  const drop = new Set(ours.flatMap((s) => range(s.start, s.end)));
  for (const s of ours) {
    const atEnd = s.end === lines.length;
    const before = lines[s.start - 1];
    if (atEnd && before && before.text.trim() === '' && s.start - 1 > 0) drop.add(s.start - 1);
  }
  return lines
    .filter((_, i) => !drop.has(i))
    .map((l) => l.raw)
    .join('');
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, k) => from + k);
}

/** The profile's lines for a credential. */
export function profileBody(
  workspace: string,
  creds: Pick<S3Credentials, 'accessKeyId' | 'secretAccessKey' | 'sessionToken'>,
): string[] {
  return [
    `# kept up to date by eodh-credd for workspace ${workspace}; edits here are overwritten`,
    `aws_access_key_id = ${creds.accessKeyId}`,
    `aws_secret_access_key = ${creds.secretAccessKey}`,
    `aws_session_token = ${creds.sessionToken}`,
  ];
}

// ---- the file ----------------------------------------------------------------------------

const me = (): number | undefined => process.getuid?.();

function refuse(file: string, why: string): never {
  throw new UserError(`${file}: ${why}; the credentials file is not written there.`, EXIT.NOPERM);
}

function kindOf(stat: Stats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Refuse a file that is not a regular file of our own. */
function assertOwnRegularFile(file: string, stat: Stats): void {
  if (!stat.isFile()) refuse(file, `it is ${kindOf(stat)}, not a regular file`);
  const uid = me();
  if (uid !== undefined && stat.uid !== uid) refuse(file, `it belongs to another user (uid ${stat.uid})`);
}

/** Refuse a directory (or one above it) that someone else could change entries of. */
function assertTrustedDirectories(dir: string, file: string): void {
  const uid = me();
  for (let current = dir; ; current = dirname(current)) {
    let stat: Stats | undefined;
    try {
      stat = lstatSync(current);
    } catch (err) {
      // Missing: we create it (0700) when we write.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (stat) {
      if (stat.isSymbolicLink()) {
        // A link on the way: check where it leads, and that the link itself is ours.
        if (uid !== undefined && stat.uid !== uid && stat.uid !== 0)
          refuse(file, `${current} is a symbolic link of another user (uid ${stat.uid})`);
        assertTrustedDirectories(resolve(dirname(current), readlinkSync(current)), file);
      } else {
        if (uid !== undefined && stat.uid !== uid && stat.uid !== 0)
          refuse(file, `its directory ${current} belongs to another user (uid ${stat.uid})`);
        const sticky = (stat.mode & 0o1000) !== 0;
        if ((stat.mode & 0o022) !== 0 && !sticky)
          refuse(
            file,
            `its directory ${current} is writable by other users (mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')})`,
          );
      }
    }
    if (current === dirname(current)) return;
  }
}

/**
 * The path to read and replace: `file` itself, or where the symlinks we own lead (a dotfiles
 * setup keeps its link; we write the file it points to). Refuses what others could control.
 */
export function sinkTarget(file: string): string {
  const uid = me();
  let path = resolve(file);
  for (let hops = 0; hops < 16; hops++) {
    let stat: Stats;
    try {
      stat = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      assertTrustedDirectories(dirname(path), file);
      return path; // created by us
    }
    if (stat.isSymbolicLink()) {
      if (uid !== undefined && stat.uid !== uid)
        refuse(file, `${path} is a symbolic link of another user (uid ${stat.uid}), which is not followed`);
      path = resolve(dirname(path), readlinkSync(path));
      continue;
    }
    assertOwnRegularFile(file, stat);
    assertTrustedDirectories(dirname(path), file);
    return path;
  }
  return refuse(file, 'too many symbolic links');
}

/**
 * The file's text, null when there is none. Opened without following a symlink and without
 * blocking, then checked on the open descriptor: what was swapped in after sinkTarget() looked
 * is refused too.
 */
function readText(path: string, file: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') refuse(file, `${path} became a symbolic link`);
    throw err;
  }
  try {
    assertOwnRegularFile(file, fstatSync(fd));
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Put the workspace's credential in its profile; returns whether the file changed. */
export function writeProfile(file: string, workspace: string, creds: S3Credentials): boolean {
  const path = sinkTarget(file);
  const before = readText(path, file);
  const after = setProfile(before ?? '', profileName(workspace), profileBody(workspace, creds));
  if (after === before) return false;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  replaceSecretFile(path, after);
  return true;
}

/** Take the workspace's profile out of the file; returns whether the file changed. */
export function deleteProfile(file: string, workspace: string): boolean {
  const path = sinkTarget(file);
  const before = readText(path, file);
  if (before === null) return false;
  const after = removeProfile(before, profileName(workspace));
  if (after === before) return false;
  replaceSecretFile(path, after);
  return true;
}

// ---- the daemon's side -------------------------------------------------------------------

export interface SinkSlot {
  readonly record: WorkspaceRecord;
  readonly current: S3Credentials | undefined;
}

/**
 * Keeps the files of sink-enabled workspaces in step with the broker: `renewed` and `removed` are
 * the broker's hooks; `reconcile` runs at start and whenever the CLI changed the database (a sink
 * enabled, moved or disabled). A failed write is logged and costs nothing else: the endpoint keeps
 * serving.
 */
export class CredentialsFileSink {
  /** Workspace name → the file its profile was last written to. */
  private readonly written = new Map<string, string>();
  private readonly log: Logger;

  constructor(private readonly options: { readonly logger: Logger; readonly clock: Clock }) {
    this.log = options.logger.child({ module: 'file-sink' });
  }

  renewed(record: WorkspaceRecord, creds: S3Credentials): void {
    if (!record.fileSink) return;
    const previous = this.written.get(record.name);
    if (previous && previous !== record.fileSink) this.remove(record.name, previous);
    this.write(record, record.fileSink, creds);
  }

  removed(record: WorkspaceRecord): void {
    const file = this.written.get(record.name) ?? record.fileSink;
    this.written.delete(record.name);
    if (file) this.remove(record.name, file);
  }

  reconcile(slots: Iterable<SinkSlot>): void {
    const now = this.options.clock.now();
    for (const { record, current } of slots) {
      const want = record.fileSink;
      const have = this.written.get(record.name);
      if (have === (want ?? undefined)) continue;
      if (have) {
        this.written.delete(record.name);
        this.remove(record.name, have);
      }
      if (want && current && isServable(current, now)) this.write(record, want, current);
    }
  }

  private write(record: WorkspaceRecord, file: string, creds: S3Credentials): void {
    try {
      const changed = writeProfile(file, record.name, creds);
      this.written.set(record.name, file);
      if (changed)
        this.log.info({ workspace: record.name, file, profile: profileName(record.name) }, 'credentials file updated');
    } catch (err) {
      this.log.warn(
        { workspace: record.name, file, code: (err as NodeJS.ErrnoException).code },
        `could not update the credentials file: ${(err as Error).message}`,
      );
    }
  }

  private remove(workspace: string, file: string): void {
    try {
      if (deleteProfile(file, workspace))
        this.log.info({ workspace, file, profile: profileName(workspace) }, 'profile removed from credentials file');
    } catch (err) {
      this.log.warn(
        { workspace, file, code: (err as NodeJS.ErrnoException).code },
        `could not remove the profile from the credentials file: ${(err as Error).message}`,
      );
    }
  }
}
