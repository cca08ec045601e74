import WS from 'ws';
import { expect, test } from 'vitest';
import type { WebSocketConstructor } from '../../src/index.js';

// Checked by tsc (npm test runs it first): both sockets the docs name must fit without a cast.
type Fits<T extends WebSocketConstructor> = T;
export type BrowserSocketFits = Fits<typeof WebSocket>;
export type WsSocketFits = Fits<typeof WS>;

test('the browser WebSocket and the ws package fit WebSocketConstructor', () => {
  const sockets: WebSocketConstructor[] = [WS];
  expect(sockets).toHaveLength(1);
});
