import { describe, expect, test } from 'vitest';
import { mergeMessages } from '../../src/index.js';
import { applyDeleted, applyReactions, applyUpdated, replaceLoaded } from '../../src/timeline.js';
import { stored } from '../fakes.js';

const ids = (messages: readonly { id: number }[]) => messages.map((m) => m.id);

describe('mergeMessages', () => {
  test('overlapping live frames and recovery pages: ascending, each once', () => {
    const live = [stored(5), stored(9)];
    const page = [stored(6), stored(7), stored(8), stored(9)];
    const merged = mergeMessages(mergeMessages([stored(1), stored(4)], live), page);
    expect(ids(merged)).toEqual([1, 4, 5, 6, 7, 8, 9]);
  });

  test('of two copies the later change wins, whatever arrives last', () => {
    const edited = stored(3, { message: 'edited', change_seq: 12 });
    expect(mergeMessages([edited], [stored(3)])[0]?.message).toBe('edited');
    expect(mergeMessages([stored(3)], [edited])[0]?.message).toBe('edited');
  });

  test('nothing new: the same array (no re-render)', () => {
    const messages = [stored(1), stored(2)];
    expect(mergeMessages(messages, [stored(2)])).toBe(messages);
    expect(mergeMessages(messages, [])).toBe(messages);
  });
});

describe('changes', () => {
  test('recovered changes replace loaded messages only', () => {
    const loaded = [stored(1), stored(2)];
    const changed = [
      stored(2, { deleted: true, message: '', change_seq: 4 }),
      stored(99, { change_seq: 5 }),
    ];
    expect(replaceLoaded(loaded, changed).map((m) => [m.id, m.deleted])).toEqual([
      [1, false],
      [2, true],
    ]);
  });

  test('an update keeps the reactions, which only the reactions frame changes', () => {
    const loaded = [stored(1, { reactions: [{ emoji: '👍', count: 1, me: true }] })];
    const {
      type: _type,
      reactions: _reactions,
      ...fields
    } = stored(1, { message: 'new', change_seq: 3 });
    const next = applyUpdated(loaded, { ...fields, type: 'chat.message.updated' });
    expect(next[0]).toMatchObject({ message: 'new', change_seq: 3, reactions: [{ emoji: '👍' }] });
  });

  test('a delete leaves a tombstone; an older change than the loaded copy is ignored', () => {
    const loaded = [stored(1, { change_seq: 8, message: 'kept' })];
    const stale = {
      type: 'chat.message.deleted',
      id: 1,
      room: 'r1',
      deleted_at: 'x',
      change_seq: 7,
    } as const;
    expect(applyDeleted(loaded, stale)).toBe(loaded);
    const tombstone = applyDeleted(loaded, { ...stale, change_seq: 9 })[0];
    expect(tombstone).toMatchObject({ deleted: true, message: '', change_seq: 9 });
    const reacted = applyReactions(loaded, {
      type: 'chat.message.reactions',
      room: 'r1',
      id: 1,
      change_seq: 10,
      reactions: [{ emoji: '🎉', count: 2, me: false }],
    });
    expect(reacted[0]?.reactions).toEqual([{ emoji: '🎉', count: 2, me: false }]);
  });
});
