/** What to do when a socket closes: the client's reading of the close-code table. */
export type CloseDecision = 'retry' | 'refresh' | 'stop';

/** Closes that need a person (log in, be added to the room, fix the client): reconnecting
 * would only repeat them. */
const STOP_CODES = new Set([1003, 1008, 1009, 4403, 4404, 4429]);

export function closeDecision(code: number, errorCode?: string): CloseDecision {
  if (code === 4401) return errorCode === 'token_expired' ? 'refresh' : 'stop';
  if (STOP_CODES.has(code)) return 'stop';
  // Other application codes are refusals this client does not know: do not hammer them.
  if (code >= 4000 && code <= 4999) return 'stop';
  return 'retry'; // 1000/1001/1006/1011/1013 and the rest: the server or the network went away
}

export const MAX_BACKOFF_MS = 30_000;
const BASE_BACKOFF_MS = 1_000;

/** Delay before reconnect attempt `attempt` (1, 2, …): 1 s, 2 s, 4 s … capped at 30 s, each
 * between half and all of that so that clients dropped together do not return together. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  if (attempt <= 0) return 0;
  const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
