// A room admin removes a member: the member's connection stops for good (no reconnect loop).
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { loggedIn, roomId, sleep, until } from '../helpers.js';
import { DaphneServer } from '../server.js';

let server: DaphneServer;

beforeAll(async () => {
  server = await DaphneServer.start(inject('templateDb'));
});
afterAll(async () => {
  await server?.stop();
});

test('removed from the room: closed, removed_from_room, final, and no retry', async () => {
  const admin = await loggedIn(server.baseUrl, 'admin');
  const joao = await loggedIn(server.baseUrl, 'joao');
  const room = await roomId(admin, 'Chat - Vendas');
  const joaoId = (await joao.me()).id;
  const connection = joao.connect(room, { reconnectDelay: () => 100 });
  const statuses: string[] = [];
  connection.on('status', (status) => statuses.push(status));
  await until(connection, (s) => s.status === 'open', 'open');

  await admin.request('DELETE', `/api/chat/rooms/${room}/members/${joaoId}/`);
  const closed = await until(connection, (s) => s.status === 'closed', 'closed');
  expect(closed.error).toMatchObject({ code: 'removed_from_room', closeCode: 4403, final: true });
  await sleep(1_000); // a reconnect loop would show here
  expect(connection.getSnapshot().status).toBe('closed');
  expect(connection.getSnapshot().attempt).toBe(0);
  expect(statuses).toEqual(['open', 'closed']);
  expect(joao.isLoggedIn()).toBe(true); // the session itself goes on
});
