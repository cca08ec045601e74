import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { ChatClient, memoryTokenStore } from '../../src/index.js';
import { fakeFetch } from '../fakes.js';

// The `ws` package, unlike browsers, emits 'error' when a socket is closed while still
// connecting, and an EventEmitter 'error' without a listener is an uncaught exception.
let server: http.Server;
let upgrades = 0;
beforeAll(async () => {
  server = http.createServer();
  server.on('upgrade', () => void upgrades++); // never answers: the socket stays CONNECTING
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

test('close() while the ws socket is still connecting does not crash Node', async () => {
  const { port } = server.address() as AddressInfo;
  const { fetch } = fakeFetch(({ path }) =>
    path === '/api/chat/ws-ticket/' ? { status: 201, body: { ticket: 't' } } : undefined,
  );
  const client = new ChatClient({
    baseUrl: `http://127.0.0.1:${port}`,
    fetch,
    WebSocket: WebSocket,
    tokenStore: memoryTokenStore({ access: 'a', refresh: 'r' }),
  });
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.prependListener('uncaughtException', onUncaught);
  try {
    const connection = client.connect('r1', { pingIntervalMs: 0 });
    await vi.waitFor(() => expect(upgrades).toBe(1));
    connection.close(); // e.g. React StrictMode unmounting at once
    await new Promise((r) => setTimeout(r, 100));
    expect(connection.getSnapshot().status).toBe('closed');
    expect(uncaught).toEqual([]);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});
