import type {
  ChatMessage,
  MessageDeletedFrame,
  MessageReactionsFrame,
  MessageUpdatedFrame,
} from './frames.generated.js';

/** The messages by id, ascending, each once. `incoming` may overlap `existing` (a live frame and
 * a recovery page) and be in any order; of two copies of a message the one with the higher
 * change_seq wins (the other is older news). Returns `existing` itself when nothing changed. */
export function mergeMessages(
  existing: readonly ChatMessage[],
  incoming: readonly ChatMessage[],
): readonly ChatMessage[] {
  if (incoming.length === 0) return existing;
  const byId = new Map(existing.map((message) => [message.id, message]));
  let changed = false;
  for (const message of incoming) {
    const current = byId.get(message.id);
    if (current && current.change_seq >= message.change_seq) continue;
    byId.set(message.id, message);
    changed = true;
  }
  if (!changed) return existing;
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** Replaces loaded messages by their newer copies (recovered changes); ignores messages not
 * loaded: they are older than the loaded window, or recovery of new messages brings them. */
export function replaceLoaded(
  existing: readonly ChatMessage[],
  changed: readonly ChatMessage[],
): readonly ChatMessage[] {
  const loaded = new Set(existing.map((message) => message.id));
  return mergeMessages(
    existing,
    changed.filter((message) => loaded.has(message.id)),
  );
}

/** Applies a change to one loaded message when it is newer than what is loaded. */
export function patchMessage(
  existing: readonly ChatMessage[],
  id: number,
  changeSeq: number,
  patch: (message: ChatMessage) => ChatMessage,
): readonly ChatMessage[] {
  const index = findIndex(existing, id);
  const current = index >= 0 ? existing[index] : undefined;
  // The same change_seq is the same change, already applied (a repeated or replayed frame):
  // answering `existing` keeps the snapshot, so React does not render again.
  if (!current || current.change_seq >= changeSeq) return existing;
  const next = existing.slice();
  next[index] = patch(current);
  return next;
}

export function applyUpdated(
  existing: readonly ChatMessage[],
  frame: MessageUpdatedFrame,
): readonly ChatMessage[] {
  return patchMessage(existing, frame.id, frame.change_seq, (message) => ({
    ...frame,
    type: 'chat.message',
    reactions: message.reactions, // only chat.message.reactions changes them
  }));
}

export function applyDeleted(
  existing: readonly ChatMessage[],
  frame: MessageDeletedFrame,
): readonly ChatMessage[] {
  return patchMessage(existing, frame.id, frame.change_seq, (message) => ({
    ...message,
    deleted: true,
    message: '',
    mentions: [],
    attachments: [],
    reactions: [],
    change_seq: frame.change_seq,
  }));
}

export function applyReactions(
  existing: readonly ChatMessage[],
  frame: MessageReactionsFrame,
): readonly ChatMessage[] {
  return patchMessage(existing, frame.id, frame.change_seq, (message) => ({
    ...message,
    reactions: frame.reactions,
    change_seq: frame.change_seq,
  }));
}

function findIndex(messages: readonly ChatMessage[], id: number): number {
  let low = 0;
  let high = messages.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const candidate = messages[middle]!.id;
    if (candidate === id) return middle;
    if (candidate < id) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}
