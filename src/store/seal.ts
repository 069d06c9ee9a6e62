/**
 * Authenticated encryption of single values: AES-256-GCM, a random 96-bit nonce per value, and
 * additional data that binds the value to its table, column and row, so a ciphertext moved to
 * another row or column fails to open. The envelope names the key it was sealed with, so a wrong
 * master key is told apart from a damaged value.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

export const MASTER_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';

export interface SealingKey {
  /** Public fingerprint of the master key, stored with every value. */
  readonly id: string;
  readonly encryptionKey: Buffer;
}

export function sealingKey(masterKey: Buffer): SealingKey {
  if (masterKey.length !== MASTER_KEY_BYTES) throw new Error(`master key must be ${MASTER_KEY_BYTES} bytes`);
  // Separate keys for separate jobs: one derived for encryption, an HMAC for the public id.
  const encryptionKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'eodh-credd seal v1', 32));
  const id = createHmac('sha256', masterKey).update('eodh-credd key id').digest('hex').slice(0, 16);
  return { id, encryptionKey };
}

export class SealError extends Error {
  constructor(
    message: string,
    readonly reason: 'wrong_key' | 'tampered' | 'malformed',
  ) {
    super(message);
    this.name = 'SealError';
  }
}

/** The additional data for one cell: table, column and row id. */
export function cellAad(table: string, column: string, rowId: string): string {
  return `eodh-credd:${table}:${column}:${rowId}`;
}

export function seal(key: SealingKey, plaintext: string, aad: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.encryptionKey, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `${VERSION}:${key.id}:${nonce.toString('base64url')}:${body.toString('base64url')}`;
}

export function keyIdOf(envelope: string): string | undefined {
  return envelope.split(':')[1];
}

export function open(key: SealingKey, envelope: string, aad: string): string {
  const [version, keyId, nonceText, bodyText, extra] = envelope.split(':');
  if (version !== VERSION || !keyId || !nonceText || !bodyText || extra !== undefined) {
    throw new SealError('sealed value is malformed', 'malformed');
  }
  if (keyId !== key.id) throw new SealError('sealed with a different master key', 'wrong_key');
  const nonce = Buffer.from(nonceText, 'base64url');
  const body = Buffer.from(bodyText, 'base64url');
  // Node's base64 decoder skips stray characters and ignores spare bits, so several texts decode to
  // the same bytes; accept only the canonical text, so an altered envelope never opens.
  if (
    nonce.length !== NONCE_BYTES ||
    body.length < TAG_BYTES ||
    nonce.toString('base64url') !== nonceText ||
    body.toString('base64url') !== bodyText
  ) {
    throw new SealError('sealed value is malformed', 'malformed');
  }
  const decipher = createDecipheriv('aes-256-gcm', key.encryptionKey, nonce);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    throw new SealError('sealed value failed authentication', 'tampered');
  }
}
