// A scripted WebSocket and fetch for unit tests: the test plays the server.
import type { ChatMessage, ClientFrame, ServerFrame, WebSocketLike } from '../src/index.js';

export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: ClientFrame[] = [];
  closedWith: number | null = null;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  static get last(): FakeSocket {
    const socket = FakeSocket.all.at(-1);
    if (!socket) throw new Error('no socket yet');
    return socket;
  }

  send(data: string) {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code = 1000) {
    this.closedWith = code;
    this.readyState = 3;
  }

  /** The server accepts the handshake and says connection.established. */
  establish(changeSeq = 0, user = { id: 1, username: 'admin' }) {
    this.readyState = 1;
    this.onopen?.({});
    this.push({
      type: 'connection.established',
      room: { id: 'r1', name: 'Sala', type: 'group', change_seq: changeSeq },
      user,
    });
  }

  push(frame: ServerFrame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }

  sentOf<T extends ClientFrame['type']>(type: T) {
    return this.sent.filter((frame) => (frame.type ?? 'chat.message') === type) as Extract<
      ClientFrame,
      { type?: T }
    >[];
  }
}

export function stored(id: number, changes: Partial<ChatMessage> = {}): ChatMessage {
  return {
    type: 'chat.message',
    id,
    room: 'r1',
    message: `m${id}`,
    user: { id: 2, username: 'maria' },
    created_at: '2026-12-04T12:00:00.000000Z',
    client_id: null,
    edited_at: null,
    deleted: false,
    reply_to: null,
    reply_count: 0,
    last_reply_at: null,
    change_seq: 0,
    mentions: [],
    attachments: [],
    reactions: [],
    kind: 'user',
    data: null,
    ...changes,
  };
}

type Route = (request: {
  method: string;
  path: string;
  body: unknown;
  auth: string | null;
}) => RouteAnswer | undefined | Promise<RouteAnswer | undefined>;
type RouteAnswer = { status: number; body?: unknown; headers?: Record<string, string> };

/** A fetch answering from `route`; every call is kept in `calls`. */
export function fakeFetch(route: Route) {
  const calls: { method: string; path: string; body: unknown; auth: string | null }[] = [];
  const fetch = async (input: unknown, init: RequestInit = {}) => {
    const url = new URL(String(input));
    const headers = (init.headers ?? {}) as Record<string, string>;
    const request = {
      method: init.method ?? 'GET',
      path: url.pathname + url.search,
      body: init.body ? JSON.parse(String(init.body)) : undefined,
      auth: headers.Authorization ?? null,
    };
    calls.push(request);
    await Promise.resolve();
    const answer = (await route(request)) ?? {
      status: 404,
      body: { code: 'not_found', detail: 'no route' },
    };
    return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
      status: answer.status,
      headers: answer.headers ?? {},
    });
  };
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

/** The chat.message.updated frame of a stored message (every field but reactions). */
export function updated(
  message: ChatMessage,
): Extract<ServerFrame, { type: 'chat.message.updated' }> {
  const { type: _type, reactions: _reactions, ...fields } = message;
  return { ...fields, type: 'chat.message.updated' };
}

/** A promise and the function that settles it: a REST answer the test releases. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}
