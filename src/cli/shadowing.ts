/**
 * What makes AWS clients ignore the daemon (#15). Every SDK tries, in order: AWS_ACCESS_KEY_ID in
 * the environment, then the profile (AWS_PROFILE, else [default]) from ~/.aws/credentials and
 * ~/.aws/config, and only then the container endpoint that `eodh-credd env` points at. So keys
 * in the environment, an AWS_PROFILE, or a [default] profile that has credentials silently win.
 * And in one profile name, static keys in ~/.aws/credentials win over a credential_process in
 * ~/.aws/config: the file sink's [eodh-<ws>] would shadow an `aws-profile` stanza of that name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultCredentialsFile } from '../sinks/aws-credentials-file.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface Shadow {
  readonly name: string;
  readonly detail: string;
  readonly fix: string;
}

/** The sections of an AWS ini file and their keys (lower-cased), as botocore reads them. */
export function iniSections(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*([^\]]+?)\s*\]/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (kv && current && !/^\s/.test(raw)) current.set(kv[1]!.toLowerCase(), kv[2]!);
  }
  return sections;
}

function readIni(file: string): Map<string, Map<string, string>> {
  try {
    return existsSync(file) ? iniSections(readFileSync(file, 'utf8')) : new Map();
  } catch {
    return new Map();
  }
}

export function awsConfigFile(env: Env): string {
  const explicit = env.AWS_CONFIG_FILE;
  if (explicit) return resolve(explicit.replace(/^~(?=$|\/)/, env.HOME || homedir()));
  return join(env.HOME || homedir(), '.aws', 'config');
}

/** Keys that give a profile credentials of its own (it then wins over the container endpoint). */
const CREDENTIAL_KEYS = [
  'aws_access_key_id',
  'credential_process',
  'role_arn',
  'sso_session',
  'sso_start_url',
  'web_identity_token_file',
];

export function shadows(env: Env): Shadow[] {
  const found: Shadow[] = [];
  if (env.AWS_ACCESS_KEY_ID) {
    found.push({
      name: 'AWS_ACCESS_KEY_ID',
      detail: 'AWS_ACCESS_KEY_ID is set in this environment: every AWS client uses it before the daemon',
      fix: 'unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN (or run the program with "eodh-credd exec <ws> -- …", which clears them)',
    });
  }
  if (env.AWS_PROFILE) {
    found.push({
      name: 'AWS_PROFILE',
      detail: `AWS_PROFILE=${env.AWS_PROFILE} is set: AWS clients use that profile, not the daemon`,
      fix: 'unset AWS_PROFILE (or run the program with "eodh-credd exec <ws> -- …", which clears it)',
    });
  }
  const credentialsFile = defaultCredentialsFile(env);
  const configFile = awsConfigFile(env);
  const credentials = readIni(credentialsFile);
  const config = readIni(configFile);
  const defaultCreds = credentials.get('default');
  if (defaultCreds?.has('aws_access_key_id')) {
    found.push({
      name: '[default] profile',
      detail: `[default] in ${credentialsFile} has keys: AWS clients use them before the daemon`,
      fix: `rename [default] in ${credentialsFile} (e.g. to [personal]) and use it with --profile personal`,
    });
  }
  const defaultConfig = config.get('default');
  const key = CREDENTIAL_KEYS.find((k) => defaultConfig?.has(k));
  if (key) {
    found.push({
      name: '[default] profile',
      detail: `[default] in ${configFile} has ${key}: AWS clients use it before the daemon`,
      fix: `rename [default] in ${configFile} (e.g. to [profile personal]) and use it with --profile personal`,
    });
  }
  // The same profile name with static keys in the credentials file and a credential_process in the config.
  for (const [section, keys] of config) {
    const name = section.startsWith('profile ') ? section.slice('profile '.length).trim() : section;
    if (!keys.get('credential_process')?.includes('credential-process')) continue;
    if (credentials.get(name)?.has('aws_access_key_id')) {
      found.push({
        name: `profile ${name}`,
        detail: `[${name}] in ${credentialsFile} (static keys, e.g. the file sink's) shadows [${section}] in ${configFile} (eodh-credd credential-process)`,
        fix: `give the credential_process profile another name: eodh-credd aws-profile <ws> (default eodh-<ws>-process), then remove [${section}] from ${configFile}`,
      });
    }
  }
  return found;
}
