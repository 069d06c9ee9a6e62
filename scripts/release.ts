/**
 * `npm run release`: the tarball a user installs with `npm install -g --prefix ~/.local
 * ./eodh-credd-<version>.tgz` (#16). package.json's "release" script builds first and runs the
 * "generate" script if there is one (generated files: man page, completions); this checks
 * that everything the package needs is there, stages it in a temporary directory with an
 * npm-shrinkwrap.json made from package-lock.json and the production dependencies it pins
 * bundled (see packedManifest), packs it with `npm pack`, checks the packed file list, and prints
 * the tarball's path.
 *
 * The shrinkwrap pins the production dependencies to the versions in package-lock.json, the ones
 * CI installs with `npm ci` and tests, so a user's install gets exactly those. Development
 * dependencies are left out of it. It is never written into the checkout, where `npm ci` would prefer it to
 * package-lock.json.
 *
 *   node dist/scripts/release.js [--out DIR]      (default: the repository root)
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly files: readonly string[];
  readonly bin?: Readonly<Record<string, string>>;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly [key: string]: unknown;
}

interface LockEntry {
  readonly version?: string;
  readonly dev?: boolean;
  readonly devOptional?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly [key: string]: unknown;
}

export interface Lockfile {
  readonly name?: string;
  readonly version?: string;
  readonly lockfileVersion: number;
  readonly packages: Readonly<Record<string, LockEntry>>;
}

/** A problem that stops the release, said in one sentence with what to do. */
export class ReleaseError extends Error {
  override name = 'ReleaseError';
}

/** Files outside "files" that the tarball must hold (npm adds package.json and README.md itself). */
export const REQUIRED_FILES = ['LICENSE', 'CHANGELOG.md', 'README.md', 'npm-shrinkwrap.json'] as const;

/** Paths inside "files" the installed command needs: the units install-systemd reads, the migrations. */
export const REQUIRED_PACKED = [
  'systemd/eodh-credd.service',
  'systemd/eodh-credd-system.service',
  'config.example.toml',
] as const;

/**
 * Every path the tarball should hold that is missing from `root`: each "files" entry (the build's
 * output, generated files), each bin, and REQUIRED_FILES besides npm-shrinkwrap.json (made here).
 */
export function missingFiles(root: string, manifest: Manifest): string[] {
  const wanted = [
    ...manifest.files,
    ...Object.values(manifest.bin ?? {}),
    ...REQUIRED_FILES.filter((f) => f !== 'npm-shrinkwrap.json'),
    ...REQUIRED_PACKED,
  ];
  return [...new Set(wanted)].filter((path) => !existsSync(join(root, path)));
}

/**
 * npm-shrinkwrap.json for the package: package-lock.json's production part. Throws when the lock
 * does not match package.json's dependencies (then `npm install` has not been run since).
 */
export function shrinkwrapFrom(lock: Lockfile, manifest: Manifest): Lockfile {
  if (lock.lockfileVersion < 2)
    throw new ReleaseError('package-lock.json is older than lockfileVersion 2: run npm install.');
  const root = lock.packages[''];
  const declared = manifest.dependencies ?? {};
  const locked = root?.dependencies ?? {};
  const differ = [...new Set([...Object.keys(declared), ...Object.keys(locked)])].filter(
    (name) => declared[name] !== locked[name],
  );
  if (differ.length > 0) {
    throw new ReleaseError(
      `package-lock.json does not match package.json for ${differ.join(', ')}: run npm install and commit the lock.`,
    );
  }
  const packages: Record<string, LockEntry> = {
    '': {
      name: manifest.name,
      version: manifest.version,
      dependencies: declared,
      ...pick(manifest, ['license', 'bin', 'engines']),
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    // devOptional: needed only by a dev dependency or as an optional peer (typescript for valibot).
    if (path === '' || entry.dev || entry.devOptional) continue;
    packages[path] = entry;
  }
  for (const name of Object.keys(declared)) {
    if (!packages[`node_modules/${name}`])
      throw new ReleaseError(`package-lock.json has no entry for ${name}: run npm install.`);
  }
  return { name: manifest.name, version: manifest.version, lockfileVersion: lock.lockfileVersion, packages };
}

function pick(entry: Readonly<Record<string, unknown>>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => entry[k] !== undefined).map((k) => [k, entry[k]]));
}

/**
 * package.json as packed: what an installed package needs (no development dependencies or
 * scripts), with the shrinkwrap in "files" (npm pack leaves it out otherwise) and every
 * dependency bundled.
 *
 * Bundled, because npm ignores the shrinkwrap of a tarball installed by path with -g and resolves
 * every dependency afresh (npm/cli#5325, #5349): the dependencies travel inside the tarball, as
 * `npm ci` installs them from the shrinkwrap, and the install needs no registry. Their install
 * scripts still run on the user's machine (better-sqlite3 gets its addon for the user's Node);
 * no compiled addon is packed.
 */
export function packedManifest(manifest: Manifest): Manifest {
  const { devDependencies: _dev, scripts: _scripts, ...kept } = manifest;
  return {
    ...kept,
    files: [...manifest.files, 'npm-shrinkwrap.json'],
    bundleDependencies: Object.keys(manifest.dependencies ?? {}),
  } as Manifest;
}

interface PackResult {
  readonly filename: string;
  readonly size: number;
  readonly shasum: string;
  readonly integrity: string;
  readonly files: ReadonlyArray<{ readonly path: string }>;
}

/** Build the tarball from the checkout at `root` into `outDir`; its absolute path. */
export function release(root: string, outDir: string): { tarball: string; pack: PackResult } {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest;
  const missing = missingFiles(root, manifest);
  if (missing.length > 0) {
    throw new ReleaseError(
      `missing from ${root}: ${missing.join(', ')}. Run "npm run release" (it builds and generates them first).`,
    );
  }
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile;
  const shrinkwrap = shrinkwrapFrom(lock, manifest);

  const stage = mkdtempSync(join(tmpdir(), 'eodh-credd-release-'));
  try {
    for (const path of [...manifest.files, ...REQUIRED_FILES.filter((f) => f !== 'npm-shrinkwrap.json')]) {
      cpSync(join(root, path), join(stage, path), { recursive: true });
    }
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify(packedManifest(manifest), null, 2)}\n`);
    writeFileSync(join(stage, 'npm-shrinkwrap.json'), `${JSON.stringify(shrinkwrap, null, 2)}\n`);
    // The dependencies to bundle, exactly as the shrinkwrap pins them (from the npm cache when
    // `npm ci` in the checkout has filled it). No scripts: nothing is built here.
    execFileSync(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
      { cwd: stage, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', outDir], {
      cwd: stage,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pack = (JSON.parse(out) as PackResult[])[0];
    if (!pack) throw new ReleaseError(`npm pack printed no result: ${out}`);
    const packed = new Set(pack.files.map((f) => f.path));
    const absent = [...REQUIRED_FILES, ...REQUIRED_PACKED, ...Object.values(manifest.bin ?? {})].filter(
      (f) => !packed.has(f.replace(/^\.\//, '')),
    );
    if (!pack.files.some((f) => /^migrations\/.+\.sql$/.test(f.path))) absent.push('migrations/*.sql');
    if (absent.length > 0) throw new ReleaseError(`the packed tarball lacks ${absent.join(', ')}.`);
    return { tarball: join(outDir, pack.filename), pack };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function main(): number {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const root = fileURLToPath(new URL('../../', import.meta.url));
  try {
    const { tarball, pack } = release(root, resolve(values.out ?? root));
    const mib = (pack.size / 1024 / 1024).toFixed(2);
    process.stdout.write(`${tarball}\n`);
    process.stderr.write(`release: ${pack.files.length} files, ${mib} MiB, sha1 ${pack.shasum}\n`);
    process.stderr.write(`install: npm install -g --prefix ~/.local ${tarball}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ReleaseError)) throw err;
    process.stderr.write(`release: ${err.message}\n`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
