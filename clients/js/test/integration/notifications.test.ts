// A mention notifies every socket of the user, in every room they have open: the client's
// `notification` event tells it once, the connections' own event once per socket.
import { afterAll, beforeAll, expect, inject, test, vi } from 'vitest';
import type { Notification } from '../../src/index.js';
import { loggedIn, postMessage, roomId, until } from '../helpers.js';
import { DaphneServer } from '../server.js';

let server: DaphneServer;

beforeAll(async () => {
  server = await DaphneServer.start(inject('templateDb'));
});
afterAll(async () => {
  await server?.stop();
});

test('a mention with two rooms open: one client notification, one per connection', async () => {
  const admin = await loggedIn(server.baseUrl, 'admin');
  const maria = await loggedIn(server.baseUrl, 'maria');
  const sales = await roomId(maria, 'Chat - Vendas');
  const all = await roomId(maria, 'Chat - Gerência');
  const rooms = [maria.connect(sales), maria.connect(all)];
  await Promise.all(rooms.map((c) => until(c, (s) => s.status === 'open', 'open')));
  const toasts: Notification[] = [];
  maria.on('notification', (n) => toasts.push(n));
  let perConnection = 0;
  for (const connection of rooms) connection.on('notification', () => perConnection++);

  const { id } = await postMessage(admin, sales, '@maria olha isto');
  await until(rooms[0]!, (s) => s.messages.some((m) => m.id === id), 'the message');
  await vi.waitFor(() => expect(perConnection).toBe(2), { timeout: 5_000 }); // both sockets'
  expect(toasts.map((n) => [n.kind, n.message.id])).toEqual([['mention', id]]);
  for (const connection of rooms) connection.close();
});
