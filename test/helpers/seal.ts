/** What happened when a sealed value was opened: "opened", or the SealError's reason. */
import { SealError } from '../../src/store/seal.js';

export function sealReason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof SealError) return err.reason;
    throw err;
  }
  return 'opened';
}
