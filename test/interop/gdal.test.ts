/**
 * The file sink, end to end, with GDAL (Debian's gdal-bin) as the client that cannot use the
 * container endpoint: GDAL before 3.9 (and QGIS and rasterio built on it) reads static keys from
 * a profile in the AWS credentials file. `eodh-credd workspace sink <ws> --enable` keeps
 * [eodh-<ws>] there up to date; gdalinfo and ogrinfo read a GeoTIFF and a GeoJSON from moto S3
 * through /vsis3/ with AWS_PROFILE=eodh-<ws>. Around it: the user's own profiles and comments
 * stay byte for byte through every write, the profile follows renewals, moves with --file,
 * leaves with --disable and with the workspace, and a restarted daemon writes it at start.
 *
 * GDAL 3.6 names the credentials file CPL_AWS_CREDENTIALS_FILE (not AWS_SHARED_CREDENTIALS_FILE);
 * both are set where a non-default file is used. From GDAL 3.9 on, /vsis3/ also reads
 * AWS_CONTAINER_CREDENTIALS_FULL_URI with the token (file or value): tested when that GDAL is here.
 */

import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type CliResult, runCli, runProgram, startServe, waitFor } from '../helpers/daemon.js';
import { type Interop, startInterop } from '../helpers/interop.js';
import { gdalinfo, HINTS, ogrinfo, requireTool, versionOf } from '../helpers/tools.js';

const WS = 'ws1';
const PROFILE = `eodh-${WS}`;

/** A user's credentials file: comments, another profile after ours will go, no final newline. */
const USER_FILE = [
  '# personal keys, do not share',
  '[default]',
  'aws_access_key_id = AKIAUSERDEFAULT00000',
  'aws_secret_access_key = user/secret+default',
  '',
  '; the work account',
  '[work]',
  'region=eu-west-1',
  'aws_access_key_id=AKIAUSERWORK00000000',
  'aws_secret_access_key=work',
].join('\n');

const GEOJSON = JSON.stringify({
  type: 'FeatureCollection',
  features: [
    { type: 'Feature', properties: { name: 'Harwell' }, geometry: { type: 'Point', coordinates: [-1.31, 51.57] } },
    { type: 'Feature', properties: { name: 'Leicester' }, geometry: { type: 'Point', coordinates: [-1.13, 52.63] } },
  ],
});
const GRID = [
  'ncols 4',
  'nrows 3',
  'xllcorner 0',
  'yllcorner 50',
  'cellsize 0.5',
  'NODATA_value -9999',
  '1 2 3 4',
  '5 6 7 8',
  '9 10 11 12',
  '',
].join('\n');

/** The variables whose names start with `prefix`. */
function pick(env: Record<string, string>, prefix: string): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith(prefix)));
}

function ok(t: Test, out: CliResult, what: string): boolean {
  return t.equal(out.code, 0, what, { stdout: out.stdout, stderr: out.stderr });
}

/** GDAL's view of S3: moto on loopback, plain http, path-style; no container variables. */
async function gdalEnv(world: Interop, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const env = await world.clientEnv();
  for (const k of Object.keys(env)) if (k.startsWith('AWS_CONTAINER_')) delete env[k];
  return {
    ...env,
    AWS_S3_ENDPOINT: world.moto.endpoint.replace(/^http:\/\//, ''),
    AWS_HTTPS: 'NO',
    AWS_VIRTUAL_HOSTING: 'FALSE',
    // Reading a file makes GDAL list its directory for side-car files; moto_server mis-checks
    // the signature of a listing with a "/" delimiter. Cloud users set this anyway.
    GDAL_DISABLE_READDIR_ON_OPEN: 'EMPTY_DIR',
    ...extra,
  };
}

const gdal = gdalinfo();
const ogr = ogrinfo();
const translate = gdal ? join(gdal, '..', 'gdal_translate') : null;

if (
  requireTool(t, 'gdalinfo', gdal, HINTS.gdal) &&
  requireTool(t, 'ogrinfo', ogr, HINTS.gdal) &&
  requireTool(t, 'gdal_translate', translate, HINTS.gdal)
) {
  const version = versionOf(gdal);
  t.comment(`GDAL: ${version}`);
  const world = await startInterop(t, { workspaces: [WS] });
  const credentialsFile = join(world.home.root, '.aws', 'credentials');
  mkdirSync(join(world.home.root, '.aws'), { recursive: true });
  writeFileSync(credentialsFile, USER_FILE, { mode: 0o600 });

  // The data: a GeoJSON and a small GeoTIFF (made by gdal_translate from an ASCII grid).
  const data = world.scratch('data');
  writeFileSync(join(data, 'grid.asc'), GRID);
  const made = await runProgram(translate, ['-q', '-of', 'GTiff', join(data, 'grid.asc'), join(data, 'grid.tif')], {
    env: await world.clientEnv(),
  });
  if (made.code !== 0) throw new Error(`gdal_translate failed: ${made.stderr}`);
  await world.putObject('gdal/points.geojson', GEOJSON);
  await world.putObject('gdal/grid.tif', readFileSync(join(data, 'grid.tif')));

  const readRaster = async (t: Test, env: Record<string, string>) => {
    const out = await runProgram(gdal, ['-json', `/vsis3/${world.moto.bucket}/gdal/grid.tif`], { env });
    if (ok(t, out, 'gdalinfo reads the GeoTIFF through /vsis3/')) {
      const info = JSON.parse(out.stdout) as { size: number[]; driverShortName: string };
      t.same([info.driverShortName, info.size], ['GTiff', [4, 3]], 'a 4×3 GeoTIFF');
    }
  };
  const readVector = async (t: Test, env: Record<string, string>) => {
    const out = await runProgram(ogr, ['-ro', '-so', '-al', `/vsis3/${world.moto.bucket}/gdal/points.geojson`], {
      env,
    });
    if (ok(t, out, 'ogrinfo reads the GeoJSON through /vsis3/'))
      t.match(out.stdout, /Feature Count: 2/, 'with its two features');
  };
  const profileKey = (file: string) =>
    new RegExp(`\\[${PROFILE}\\][^[]*aws_access_key_id = (\\S+)`).exec(readFileSync(file, 'utf8'))?.[1];

  t.test('without the sink GDAL has no credentials for S3', async (t) => {
    const out = await runProgram(gdal, [`/vsis3/${world.moto.bucket}/gdal/grid.tif`], {
      env: await gdalEnv(world, { AWS_PROFILE: PROFILE }),
    });
    t.not(out.code, 0, 'gdalinfo fails');
    t.match(out.stderr, /AWS_SECRET_ACCESS_KEY .*not defined/, 'for want of credentials');
  });

  t.test('workspace sink --enable writes the profile; GDAL reads with it', async (t) => {
    const enabled = await runCli(world.home, ['workspace', 'sink', WS, '--enable']);
    ok(t, enabled, 'workspace sink --enable');
    t.match(enabled.stdout, `AWS_PROFILE=${PROFILE}`);
    const text = readFileSync(credentialsFile, 'utf8');
    t.ok(
      text.startsWith(`${USER_FILE}\n\n[${PROFILE}]\n`),
      "the user's profiles and comments are untouched; ours is appended",
    );
    t.equal(statSync(credentialsFile).mode & 0o777, 0o600, 'the file is 0600');
    t.equal(profileKey(credentialsFile), (await world.served()).AccessKeyId, 'the profile holds the served credential');
    const status = await runCli(world.home, ['workspace', 'sink', WS]);
    t.match(status.stdout, credentialsFile, 'workspace sink <ws> shows where');
    const env = await gdalEnv(world, { AWS_PROFILE: PROFILE });
    await readRaster(t, env);
    await readVector(t, env);
  });

  t.test('every renewal rewrites the profile, and GDAL keeps reading', async (t) => {
    const before = (await world.served()).AccessKeyId;
    const refreshed = await runCli(world.home, ['refresh', WS]);
    ok(t, refreshed, 'eodh-credd refresh');
    const after = await waitFor(
      async () => {
        const key = (await world.served()).AccessKeyId;
        return key !== before ? key : null;
      },
      20_000,
      { what: 'a renewed credential' },
    );
    await waitFor(() => profileKey(credentialsFile) === after, 10_000, { what: 'the profile to hold the renewed key' });
    t.pass('the profile holds the renewed key');
    t.ok(
      readFileSync(credentialsFile, 'utf8').startsWith(`${USER_FILE}\n\n[${PROFILE}]\n`),
      'the rest of the file is unchanged',
    );
    await readVector(t, await gdalEnv(world, { AWS_PROFILE: PROFILE }));
  });

  t.test('--file moves the profile to another file', async (t) => {
    const other = join(world.scratch('creds'), 'credentials');
    ok(
      t,
      await runCli(world.home, ['workspace', 'sink', WS, '--enable', '--file', other]),
      'workspace sink --enable --file',
    );
    t.equal(
      readFileSync(credentialsFile, 'utf8'),
      `${USER_FILE}\n`,
      "gone from the old file, which is the user's again (with a final newline)",
    );
    t.equal(profileKey(other), (await world.served()).AccessKeyId, 'in the new file');
    // GDAL 3.6 reads CPL_AWS_CREDENTIALS_FILE; the SDKs read AWS_SHARED_CREDENTIALS_FILE.
    await readRaster(
      t,
      await gdalEnv(world, {
        AWS_PROFILE: PROFILE,
        CPL_AWS_CREDENTIALS_FILE: other,
        AWS_SHARED_CREDENTIALS_FILE: other,
      }),
    );
    ok(t, await runCli(world.home, ['workspace', 'sink', WS, '--disable']), 'workspace sink --disable');
    t.equal(readFileSync(other, 'utf8'), '', 'disabled: the profile is removed');
    const blocked = await runCli(world.home, [
      'workspace',
      'sink',
      WS,
      '--enable',
      '--file',
      join(other, 'below-a-file'),
    ]);
    t.equal(blocked.code, 73, 'a file that cannot be written: exit 73 (EX_CANTCREAT)');
    t.match(blocked.stderr, /^eodh-credd: Cannot update \S+below-a-file \(ENOTDIR\)/);
    t.match(
      (await runCli(world.home, ['workspace', 'sink', WS])).stdout,
      'no credentials file is kept',
      'and the setting is unchanged',
    );
  });

  const [major = 0, minor = 0] = (/GDAL (\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  if (major > 3 || (major === 3 && minor >= 9)) {
    t.test('GDAL >= 3.9 reads through the container endpoint directly (no sink)', async (t) => {
      const env = await world.clientEnv(); // the variables `eodh-credd env` prints
      const noFile = join(world.home.root, 'no-such-credentials');
      await readRaster(t, {
        ...(await gdalEnv(world, { CPL_AWS_CREDENTIALS_FILE: noFile, AWS_SHARED_CREDENTIALS_FILE: noFile })),
        ...pick(env, 'AWS_CONTAINER_'),
      });
    });
  } else {
    t.comment(
      `GDAL ${major}.${minor} predates container-endpoint support in /vsis3/ (3.9): the file sink is its way in.`,
    );
  }

  t.test('a restarted daemon writes the profile at start; removing the workspace removes it', async (t) => {
    ok(t, await runCli(world.home, ['workspace', 'sink', WS, '--enable']), 'enabled again');
    await world.daemon.stop();
    writeFileSync(credentialsFile, USER_FILE, { mode: 0o600 }); // as if the user had reset the file
    const daemon = await startServe(world.home, { t });
    await waitFor(() => profileKey(credentialsFile), 10_000, { what: 'the profile written at start' });
    t.ok(
      readFileSync(credentialsFile, 'utf8').startsWith(`${USER_FILE}\n\n[${PROFILE}]\n`),
      "written at start, next to the user's profiles",
    );
    const removed = await runCli(world.home, ['workspace', 'remove', WS]);
    ok(t, removed, 'workspace remove');
    t.equal(readFileSync(credentialsFile, 'utf8'), `${USER_FILE}\n`, 'the profile left with the workspace');
    await daemon.stop();
  });
}
