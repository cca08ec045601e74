// Access tokens of 3 s: the socket closes with token_expired, the client refreshes the token
// and reconnects; REST calls refresh too. The user sees an open room throughout the lifetime.
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { ServerFrame } from '../../src/index.js';
import { loggedIn, postMessage, roomId, sleep, until } from '../helpers.js';
import { DaphneServer } from '../server.js';

let server: DaphneServer;

beforeAll(async () => {
  server = await DaphneServer.start(inject('templateDb'), { JWT_ACCESS_SECONDS: '3' });
});
afterAll(async () => {
  await server?.stop();
});

test('an expired access token is refreshed and the socket reconnected', async () => {
  const admin = await loggedIn(server.baseUrl, 'admin');
  const maria = await loggedIn(server.baseUrl, 'maria');
  const room = await roomId(admin, 'Chat - Vendas');
  const connection = admin.connect(room, { auth: 'token', reconnectDelay: () => 200 });
  const frames: ServerFrame[] = [];
  connection.on('frame', (frame) => frames.push(frame));
  const statuses: string[] = [];
  connection.on('status', (status) => statuses.push(status));
  await until(connection, (s) => s.status === 'open', 'open');

  const expired = () => frames.some((f) => f.type === 'error' && f.code === 'token_expired');
  await until(connection, () => expired(), 'token_expired', 8_000);
  await until(connection, (s) => s.status === 'open', 'open again');
  const { id } = await postMessage(maria, room, 'after the expiry'); // maria's token expired too
  const seen = await until(connection, (s) => s.messages.some((m) => m.id === id), 'the message');
  expect(seen.error).toBeNull();
  expect(statuses).not.toContain('closed');
  expect(statuses.filter((s) => s === 'open').length).toBeGreaterThanOrEqual(2);
  expect(admin.isLoggedIn()).toBe(true);
  connection.close();
});

test('ticket connections and REST refresh an expired token before use', async () => {
  const admin = await loggedIn(server.baseUrl, 'admin');
  const room = await roomId(admin, 'Chat - Vendas');
  await sleep(3_500); // the access token is now expired
  const connection = admin.connect(room); // POST ws-ticket/ answers 401 token_expired first
  await until(connection, (s) => s.status === 'open', 'open');
  expect((await admin.me()).username).toBe('admin');
  expect(connection.getSnapshot().attempt).toBe(0);
  connection.close();
});
