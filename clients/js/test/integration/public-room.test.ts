// The public room `teste`: nothing stored, messages echoed with `id: null` and the sender's
// client_id. The outbox is acknowledged by that client_id; there is no history to load.
import { afterAll, beforeAll, expect, inject, test, vi } from 'vitest';
import type { ServerFrame } from '../../src/index.js';
import { loggedIn, sleep, until } from '../helpers.js';
import { DaphneServer } from '../server.js';

let server: DaphneServer;

beforeAll(async () => {
  server = await DaphneServer.start(inject('templateDb'));
});
afterAll(async () => {
  await server?.stop();
});

test('a message sent in the public room is acknowledged by its echo', async () => {
  const admin = await loggedIn(server.baseUrl, 'admin');
  const maria = await loggedIn(server.baseUrl, 'maria');
  const connection = admin.connect('teste', { reconnectDelay: () => 200 });
  const other = maria.connect('teste', { reconnectDelay: () => 200 });
  const statuses: string[] = [];
  connection.on('status', (status) => statuses.push(status));
  const seen: ServerFrame[] = [];
  other.on('frame', (frame) => seen.push(frame));
  await until(connection, (s) => s.status === 'open', 'open');
  await until(other, (s) => s.status === 'open', 'the other open');

  const clientId = connection.send('olá, sala pública');
  await until(connection, (s) => s.pending.length === 0, 'the echo acknowledges it');
  // the other socket's copy of the broadcast may come a little later than the sender's
  await vi.waitFor(
    () =>
      expect(seen).toContainEqual(
        expect.objectContaining({ type: 'chat.message', id: null, message: 'olá, sala pública' }),
      ),
    { timeout: 5_000 },
  );
  // the other's echo carries the sender's client_id: it acknowledges nothing of maria's
  const mine = other.send('e eu');
  await until(other, (s) => s.pending.length === 0, "maria's acknowledged");
  expect(mine).not.toBe(clientId);

  await sleep(1_500); // no history to load: the socket stays open, no reconnect loop
  expect(connection.getSnapshot()).toMatchObject({ status: 'open', error: null, messages: [] });
  expect(statuses).toEqual(['open']);
  connection.close();
  other.close();
});
