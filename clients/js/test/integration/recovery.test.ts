// The server is killed (SIGKILL) while another user keeps posting, and restarted on the same
// port: the connection comes back with every message once, in order, its outbox delivered.
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { ChatClient, ChatMessage } from '../../src/index.js';
import { loggedIn, postMessage, roomId, sleep, until } from '../helpers.js';
import { DaphneServer } from '../server.js';

let server: DaphneServer;

beforeAll(async () => {
  server = await DaphneServer.start(inject('templateDb'));
});
afterAll(async () => {
  await server?.stop();
});

/** Posts a message every `everyMs` until stopped, across the outage (failures are the outage). */
function keepPosting(client: ChatClient, room: string, everyMs: number) {
  const posted: number[] = [];
  let running = true;
  const done = (async () => {
    for (let n = 0; running; n++) {
      try {
        posted.push((await postMessage(client, room, `maria ${n}`)).id);
      } catch {
        // the server is down
      }
      await sleep(everyMs);
    }
  })();
  return {
    posted,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function fullHistory(
  client: ChatClient,
  room: string,
  after: number,
): Promise<ChatMessage[]> {
  const all: ChatMessage[] = [];
  for (let cursor = after, more = true; more;) {
    const page = await client.history(room, { after: cursor, limit: 200 });
    all.push(...page.messages);
    more = page.hasMore;
    cursor = page.messages.at(-1)?.id ?? cursor;
  }
  return all;
}

test('a killed and restarted server: no gap, no duplicate, the outbox delivered once', async () => {
  const admin = await loggedIn(server.baseUrl, 'admin');
  const maria = await loggedIn(server.baseUrl, 'maria');
  const room = await roomId(admin, 'Chat - Vendas');
  // Attempts wait for retryNow(): the test decides when the client comes back.
  const connection = admin.connect(room, { reconnectDelay: () => 60_000 });
  const statuses: string[] = [];
  connection.on('status', (status) => statuses.push(status));
  let recovered = 0; // messages that came in chat.sync answers
  let recoveredChanges = 0; // and in chat.sync_changes answers
  connection.on('frame', (frame) => {
    if (frame.type === 'chat.history') recovered += frame.messages.length;
    if (frame.type === 'chat.changes') recoveredChanges += frame.messages.length;
  });
  await until(connection, (s) => s.status === 'open', 'open');
  const firstId = (await postMessage(maria, room, 'before the outage')).id;
  await until(connection, (s) => s.messages.some((m) => m.id === firstId), 'the first message');

  const sender = keepPosting(maria, room, 40);
  await sleep(400);
  await server.kill();
  await until(connection, (s) => s.status === 'reconnecting', 'reconnecting');
  const outbox = [connection.send('offline 1'), connection.send('offline 2')];
  expect(connection.getSnapshot().pending.map((p) => p.state)).toEqual(['queued', 'queued']);
  connection.retryNow(); // an attempt while the server is down fails and waits again
  await until(connection, (s) => s.attempt === 2 && s.nextRetryAt !== null, 'a failed attempt');
  await server.restart();
  await sleep(500); // maria posts while the connection is still down...
  // ...and changes a message the connection has loaded: chat.sync_changes brings it back
  await maria.request('PATCH', `/api/chat/rooms/${room}/messages/${firstId}/`, {
    message: 'edited in the outage',
  });
  await maria.request('POST', `/api/chat/rooms/${room}/messages/${firstId}/reactions/`, {
    emoji: '👍',
  });
  connection.retryNow();
  await sleep(500); // ...and while it comes back
  await sender.stop();

  const expected = await fullHistory(maria, room, firstId - 1);
  const last = expected.at(-1)!.id;
  const seen = await until(
    connection,
    (s) => s.status === 'open' && s.pending.length === 0 && s.messages.at(-1)?.id === last,
    'recovery of every message',
  );
  const ids = seen.messages.filter((m) => m.id >= firstId).map((m) => m.id);
  expect(ids).toEqual(expected.map((m) => m.id)); // no gap, no duplicate, ascending
  expect(new Set(ids).size).toBe(ids.length);
  for (const id of sender.posted) expect(ids).toContain(id);
  const offline = seen.messages.filter((m) => m.message.startsWith('offline '));
  expect(offline.map((m) => m.message)).toEqual(['offline 1', 'offline 2']);
  expect(offline.map((m) => m.client_id)).toEqual(outbox);
  expect(expected.filter((m) => m.message.startsWith('offline ')).length).toBe(2); // stored once
  expect(recovered).toBeGreaterThan(0);
  const changed = await until(
    connection,
    (s) => s.messages.find((m) => m.id === firstId)?.reactions.length === 1,
    'the recovered changes',
  );
  expect(changed.messages.find((m) => m.id === firstId)).toMatchObject({
    message: 'edited in the outage',
    reactions: [{ emoji: '👍', count: 1, me: false }],
  });
  expect(changed.messages.find((m) => m.id === firstId)?.edited_at).not.toBeNull();
  expect(recoveredChanges).toBeGreaterThan(0);
  expect(statuses).toContain('reconnecting');
  expect(seen.error).toBeNull();
  connection.close();
});
