import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { ChatClient, memoryTokenStore, type ChatConnection } from '../../src/index.js';
import { fakeFetch, FakeSocket, gate, stored, updated } from '../fakes.js';

let firstPage = [stored(1), stored(2)];
/** When set, history requests wait for it (a REST page still on its way). */
let historyGate: Promise<void> | null = null;
let presenceDown = false;
let refreshes = 0;
let tickets = 0;
/** Refreshes that fail first: 'network' (fetch rejects) or an HTTP status. */
let refreshFailures: ('network' | number)[] = [];

function setup(options: Parameters<ChatClient['connect']>[1] = {}) {
  const { fetch, calls } = fakeFetch(async ({ path }) => {
    if (path === '/api/chat/ws-ticket/')
      return { status: 201, body: { ticket: tickets++ ? `t${tickets}` : 't', expires_in: 30 } };
    if (/^\/api\/chat\/rooms\/r\d\/messages\//.test(path)) {
      const results = firstPage; // read when the server reads, not when it answers
      if (historyGate) await historyGate;
      return { status: 200, body: { results, has_more: true } };
    }
    if (path === '/api/chat/rooms/r1/presence/' && presenceDown)
      return { status: 503, body: { code: 'service_unavailable', detail: 'down' } };
    if (path === '/api/chat/rooms/r1/presence/')
      return { status: 200, body: { online: [{ id: 2, username: 'maria' }] } };
    if (path === '/api/auth/token/refresh/') {
      const failure = refreshFailures.shift();
      if (failure === 'network') throw new TypeError('fetch failed');
      if (failure !== undefined) return { status: failure, body: { code: 'x', detail: 'down' } };
      refreshes++;
      return { status: 200, body: { access: `a${refreshes}` } };
    }
    return undefined;
  });
  const client = new ChatClient({
    baseUrl: 'http://chat.test',
    fetch,
    WebSocket: FakeSocket,
    tokenStore: memoryTokenStore({ access: 'a0', refresh: 'r' }),
  });
  const connection = client.connect('r1', {
    reconnectDelay: () => 0,
    pingIntervalMs: 0,
    ...options,
  });
  return { client, connection, calls };
}

async function nextSocket(after: number): Promise<FakeSocket> {
  await vi.waitFor(() => expect(FakeSocket.all.length).toBeGreaterThan(after));
  return FakeSocket.last;
}

async function opened(connection: ChatConnection, changeSeq = 0): Promise<FakeSocket> {
  const socket = await nextSocket(FakeSocket.all.length - 1 < 0 ? 0 : FakeSocket.all.length - 1);
  socket.establish(changeSeq);
  await vi.waitFor(() => expect(connection.getSnapshot().messages.length).toBeGreaterThan(0));
  return socket;
}

beforeEach(() => {
  FakeSocket.all = [];
  firstPage = [stored(1), stored(2)];
  historyGate = null;
  presenceDown = false;
  refreshes = 0;
  tickets = 0;
  refreshFailures = [];
});
afterEach(() => vi.useRealTimers());

describe('opening', () => {
  test('open only on connection.established, then the first page and presence', async () => {
    const { connection } = setup();
    const socket = await nextSocket(0);
    expect(socket.url).toBe('ws://chat.test/ws/chat/r1/?ticket=t');
    socket.readyState = 1;
    socket.onopen?.({});
    expect(connection.getSnapshot().status).toBe('connecting');
    socket.establish(7);
    expect(connection.getSnapshot().status).toBe('open');
    await vi.waitFor(() => expect(connection.getSnapshot().online).toHaveLength(1));
    const snapshot = connection.getSnapshot();
    expect(snapshot.messages.map((m) => m.id)).toEqual([1, 2]);
    expect(snapshot.hasOlder).toBe(true);
    expect(snapshot.me).toEqual({ id: 1, username: 'admin' });
    expect(snapshot.room?.change_seq).toBe(7);
  });

  test('the snapshot is a new object after a change and the same one otherwise', async () => {
    const { connection } = setup();
    const socket = await opened(connection);
    const before = connection.getSnapshot();
    expect(connection.getSnapshot()).toBe(before);
    const listener = vi.fn();
    connection.subscribe(listener);
    socket.push({ type: 'pong' });
    expect(connection.getSnapshot()).toBe(before);
    socket.push(stored(3));
    expect(connection.getSnapshot()).not.toBe(before);
    expect(listener).toHaveBeenCalled();
  });
});

describe('recovery', () => {
  test('after a drop: chat.sync from the last id, pages, merged with live frames', async () => {
    const { connection } = setup();
    const first = await opened(connection, 5);
    first.push(stored(3));
    first.drop(1006);
    expect(connection.getSnapshot().status).toBe('reconnecting');
    const second = await nextSocket(1);
    second.establish(9);
    expect(second.sentOf('chat.sync').map((f) => f.after)).toEqual([3]);
    expect(second.sentOf('chat.sync_changes').map((f) => f.after)).toEqual([5]);
    second.push(stored(7)); // live, before recovery reaches it
    second.push({ type: 'chat.history', messages: [stored(4), stored(5)], has_more: true });
    expect(second.sentOf('chat.sync').map((f) => f.after)).toEqual([3, 5]);
    second.push({ type: 'chat.history', messages: [stored(6), stored(7)], has_more: false });
    second.push({
      type: 'chat.changes',
      messages: [stored(2, { message: 'edited', change_seq: 8 })],
      has_more: false,
    });
    const snapshot = connection.getSnapshot();
    expect(snapshot.messages.map((m) => m.id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(snapshot.messages[1]?.message).toBe('edited');
    second.drop(1001);
    const third = await nextSocket(2);
    third.establish(9);
    expect(third.sentOf('chat.sync').map((f) => f.after)).toEqual([7]);
    expect(third.sentOf('chat.sync_changes').map((f) => f.after)).toEqual([8]);
  });

  test('a drop during recovery resumes from the last complete page, not a live frame', async () => {
    const { connection } = setup();
    const first = await opened(connection);
    first.drop();
    const second = await nextSocket(1);
    second.establish();
    second.push(stored(50)); // live: 3…49 not recovered yet
    second.push({ type: 'chat.history', messages: [stored(3), stored(4)], has_more: true });
    second.drop();
    const third = await nextSocket(2);
    third.establish();
    expect(third.sentOf('chat.sync').map((f) => f.after)).toEqual([4]);
  });

  test('a live edit that overtakes the first REST page is not undone by its older copy', async () => {
    const rest = gate();
    historyGate = rest.opened;
    const { connection } = setup();
    const socket = await nextSocket(0);
    socket.establish(5);
    // the page was read before the edit committed; the edit's frame arrives first
    socket.push(updated(stored(2, { message: 'edited', change_seq: 6 })));
    rest.open();
    await vi.waitFor(() => expect(connection.getSnapshot().messages).toHaveLength(2));
    expect(connection.getSnapshot().messages[1]).toMatchObject({
      message: 'edited',
      change_seq: 6,
    });
  });

  test('a live change that overtakes a loadOlder page is kept', async () => {
    firstPage = [stored(10), stored(11)];
    const { connection } = setup();
    const socket = await opened(connection, 5);
    const rest = gate();
    historyGate = rest.opened;
    firstPage = [stored(8), stored(9)];
    const older = connection.loadOlder();
    await new Promise((r) => setTimeout(r, 10));
    socket.push({
      type: 'chat.message.deleted',
      room: 'r1',
      id: 9,
      deleted_at: 'x',
      change_seq: 6,
    });
    rest.open();
    await older;
    expect(connection.getSnapshot().messages.map((m) => [m.id, m.deleted])).toEqual([
      [8, false],
      [9, true],
      [10, false],
      [11, false],
    ]);
  });

  test('a repeated change frame leaves the snapshot as it was', async () => {
    const { connection } = setup();
    const socket = await opened(connection);
    const frame = updated(stored(2, { message: 'edited', change_seq: 6 }));
    socket.push(frame);
    const before = connection.getSnapshot();
    socket.push(frame);
    expect(connection.getSnapshot()).toBe(before);
  });

  test('a rate-limited sync page is asked for again', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { connection } = setup();
    const first = await opened(connection);
    first.drop();
    await vi.advanceTimersByTimeAsync(10);
    const second = await nextSocket(1);
    second.establish();
    const sync = second.sentOf('chat.sync')[0]!;
    second.push({
      type: 'error',
      code: 'rate_limited',
      detail: 'slow',
      client_id: sync.client_id!,
      closing: false,
    });
    await vi.advanceTimersByTimeAsync(1_100);
    expect(second.sentOf('chat.sync').map((f) => f.after)).toEqual([2, 2]);
  });
});

describe('message and history events', () => {
  test('message: live and recovered messages only; history: the REST pages', async () => {
    const { connection } = setup();
    const announced: number[] = [];
    const pages: [string, number[]][] = [];
    connection.on('message', (m) => announced.push(m.id));
    connection.on('history', (h) => pages.push([h.kind, h.messages.map((m) => m.id)]));
    const first = await opened(connection); // the first page: 1, 2
    expect(announced).toEqual([]);
    expect(pages).toEqual([['first', [1, 2]]]);
    first.push(stored(3)); // live
    first.push(stored(3)); // repeated: once
    expect(announced).toEqual([3]);
    firstPage = [stored(0)];
    await connection.loadOlder();
    expect(pages.at(-1)).toEqual(['older', [0]]);
    expect(announced).toEqual([3]);
    first.drop();
    const second = await nextSocket(1);
    second.establish();
    // stored while disconnected: new to the user, so announced (3 again is not)
    second.push({ type: 'chat.history', messages: [stored(3), stored(4)], has_more: false });
    expect(announced).toEqual([3, 4]);
  });
});

describe('notifications', () => {
  const notification = (id: number) =>
    ({
      type: 'notification',
      notification: {
        id,
        kind: 'mention',
        room: { id: 'r1', name: 'Sala' },
        message: stored(3),
        created_at: '2026-12-04T12:00:00.000000Z',
        read: false,
      },
    }) as const;

  test("the client's notification event tells each once, whatever the rooms open", async () => {
    const { client, connection } = setup();
    const one = await opened(connection);
    const other = client.connect('r2', { reconnectDelay: () => 0, pingIntervalMs: 0 });
    const two = await nextSocket(1);
    two.establish();
    await vi.waitFor(() => expect(other.getSnapshot().messages.length).toBeGreaterThan(0));
    const toasts: number[] = [];
    const perRoom: string[] = [];
    const unsubscribe = client.on('notification', (n) => toasts.push(n.id));
    connection.on('notification', () => perRoom.push('r1'));
    other.on('notification', () => perRoom.push('r2'));
    one.push(notification(88)); // every socket of the user gets it
    two.push(notification(88));
    two.push(notification(89));
    one.push(notification(89));
    expect(toasts).toEqual([88, 89]);
    expect(perRoom).toEqual(['r1', 'r2', 'r2', 'r1']); // the connection's own: per socket
    unsubscribe();
    one.push(notification(90));
    expect(toasts).toEqual([88, 89]);
  });

  test('the ids remembered to tell notifications once are bounded', async () => {
    const { client, connection } = setup();
    const socket = await opened(connection);
    const toasts: number[] = [];
    client.on('notification', (n) => toasts.push(n.id));
    for (let id = 1; id <= 5_000; id++) socket.push(notification(id));
    expect(toasts).toHaveLength(5_000);
    expect(client['seenNotifications'].size).toBeLessThanOrEqual(500);
    socket.push(notification(5_000)); // the latest are still remembered
    expect(toasts).toHaveLength(5_000);
  });
});

describe('outbox', () => {
  test('queued until open, sent with a client_id, gone when its message comes back', async () => {
    const { connection } = setup();
    const clientId = connection.send('olá', { replyTo: 2 });
    expect(connection.getSnapshot().pending).toEqual([
      { clientId, text: 'olá', replyTo: 2, state: 'queued' },
    ]);
    const socket = await opened(connection);
    expect(socket.sentOf('chat.message')).toEqual([
      { type: 'chat.message', message: 'olá', client_id: clientId, reply_to: 2 },
    ]);
    expect(connection.getSnapshot().pending[0]?.state).toBe('sent');
    socket.push(stored(3, { client_id: clientId, user: { id: 1, username: 'admin' } }));
    expect(connection.getSnapshot().pending).toEqual([]);
  });

  test('the public room: acknowledged by the echo of its client_id, and no REST at all', async () => {
    const { client, calls } = setup();
    const connection = client.connect('teste', { reconnectDelay: () => 0, pingIntervalMs: 0 });
    const socket = await nextSocket(1);
    socket.readyState = 1;
    socket.push({
      type: 'connection.established',
      room: { id: 'teste', name: 'teste', type: 'public' },
      user: { id: null, username: 'anônimo' },
    });
    const clientId = connection.send('olá');
    const echo = (id: string | null) =>
      socket.push({
        type: 'chat.message',
        id: null,
        room: 'teste',
        message: 'olá',
        user: { id: null, username: 'anônimo' },
        created_at: '2026-12-04T12:00:00.000000Z',
        client_id: id,
      });
    echo('someone-else-1');
    echo(null);
    expect(connection.getSnapshot().pending.map((p) => p.state)).toEqual(['sent']);
    echo(clientId);
    await new Promise((r) => setTimeout(r, 20));
    expect(connection.getSnapshot()).toMatchObject({ status: 'open', pending: [], messages: [] });
    expect(calls.filter((c) => c.path.includes('/rooms/teste/'))).toEqual([]);
    expect(socket.sentOf('chat.sync')).toEqual([]);
  });

  test('unacknowledged messages are sent again, with the same client_id, after a reconnect', async () => {
    const { connection } = setup();
    const first = await opened(connection);
    const clientId = connection.send('olá');
    first.drop();
    expect(connection.getSnapshot().pending[0]?.state).toBe('queued');
    const second = await nextSocket(1);
    second.establish();
    expect(second.sentOf('chat.message').map((f) => f.client_id)).toEqual([clientId]);
    // the server had stored it: recovery brings it back, acknowledging it
    second.push({
      type: 'chat.history',
      messages: [stored(3, { client_id: clientId, user: { id: 1, username: 'admin' } })],
      has_more: false,
    });
    expect(connection.getSnapshot().pending).toEqual([]);
    expect(connection.getSnapshot().messages.map((m) => m.id)).toEqual([1, 2, 3]);
  });

  test('a long outbox is sent within the message budget after a reconnect, in order', async () => {
    // 10/s after a burst of 30 on the server; 20 rate_limited in a row close the socket (4429)
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const { connection } = setup();
    const ids = Array.from({ length: 60 }, (_, i) => connection.send(`m${i}`));
    connection.react(1, '👍');
    const socket = await opened(connection);
    const budgeted = () =>
      socket.sent.filter((f) => f.type !== 'read' && !f.type?.includes('sync'));
    expect(budgeted()).toHaveLength(20);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(budgeted()).toHaveLength(28);
    const late = connection.send('typed while the outbox drains');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket.sentOf('chat.message').map((f) => f.client_id)).toEqual([...ids, late]);
    expect(socket.sentOf('reaction.add')).toHaveLength(1);
  });

  test('an error frame with the client_id marks the message failed; retry sends it again', async () => {
    const { connection } = setup();
    const socket = await opened(connection);
    const clientId = connection.send('x'.repeat(5000));
    socket.push({
      type: 'error',
      code: 'message_too_long',
      detail: 'too long',
      client_id: clientId,
      closing: false,
    });
    const [failed] = connection.getSnapshot().pending;
    expect(failed).toMatchObject({
      state: 'failed',
      error: { code: 'message_too_long', clientId, final: false },
    });
    connection.retry(clientId);
    expect(socket.sentOf('chat.message')).toHaveLength(2);
    // being sent again, it no longer shows the refusal it had
    expect(connection.getSnapshot().pending[0]).toEqual({
      clientId,
      text: failed!.text,
      state: 'sent',
    });
    connection.discard(clientId);
    expect(connection.getSnapshot().pending).toEqual([]);
  });
});

describe('closing', () => {
  test('token_expired: refresh, then reconnect', async () => {
    const { connection } = setup({ auth: 'token' });
    const first = await opened(connection);
    expect(first.url).toContain('?token=a0');
    first.push({
      type: 'error',
      code: 'token_expired',
      detail: 'expired',
      closing: true,
      close_code: 4401,
    });
    const second = await nextSocket(1);
    expect(refreshes).toBe(1);
    expect(second.url).toContain('?token=a1');
    second.establish();
    expect(connection.getSnapshot()).toMatchObject({ status: 'open', error: null });
  });

  test.each(['network', 503] as const)(
    'a refresh that fails (%s) is tried again on the next token_expired',
    async (failure) => {
      refreshFailures = [failure];
      const { connection } = setup({ auth: 'token' });
      const expired = {
        type: 'error',
        code: 'token_expired',
        detail: 'expired',
        closing: true,
        close_code: 4401,
      } as const;
      const first = await opened(connection);
      first.push(expired);
      // the refresh failed: back off, then reconnect with the old token, expired again
      const second = await nextSocket(1);
      expect(second.url).toContain('?token=a0');
      expect(connection.getSnapshot().status).not.toBe('closed');
      second.push(expired);
      const third = await nextSocket(2);
      expect(refreshes).toBe(1);
      expect(third.url).toContain('?token=a1');
      third.establish();
      expect(connection.getSnapshot().status).toBe('open');
    },
  );

  test.each([
    ['removed_from_room', 4403],
    ['room_not_found', 4404],
    ['rate_limited', 4429],
    ['token_invalid', 4401],
  ])('%s (%i): closed for good, no reconnect', async (code, closeCode) => {
    const { connection } = setup();
    const socket = await opened(connection);
    socket.push({ type: 'error', code, detail: 'd', closing: true, close_code: closeCode });
    expect(socket.closedWith).not.toBeNull();
    await new Promise((r) => setTimeout(r, 20));
    expect(FakeSocket.all).toHaveLength(1);
    expect(connection.getSnapshot()).toMatchObject({
      status: 'closed',
      error: { code, closeCode, final: true },
      nextRetryAt: null,
    });
  });

  const ticketRefused = {
    type: 'error',
    code: 'token_invalid',
    detail: 'ticket expired',
    closing: true,
    close_code: 4401,
  } as const;

  test('a ticket refused at the handshake (expired on the way) is retried once, fresh', async () => {
    const { connection } = setup();
    const first = await nextSocket(0);
    first.readyState = 1;
    first.push(ticketRefused); // e.g. the tab froze between the ticket and the handshake
    const second = await nextSocket(1);
    expect([first.url, second.url].map((u) => u.split('?')[1])).toEqual(['ticket=t', 'ticket=t2']);
    expect(connection.getSnapshot()).toMatchObject({ status: 'connecting', error: null });
    second.establish();
    expect(connection.getSnapshot()).toMatchObject({ status: 'open', error: null });
    // once per attempt: after an open socket a later handshake gets its own retry
    second.drop();
    const third = await nextSocket(2);
    third.push(ticketRefused);
    const fourth = await nextSocket(3);
    fourth.establish();
    expect(connection.getSnapshot().status).toBe('open');
  });

  test('a fresh ticket refused again stops for good; token mode does not retry', async () => {
    const { connection } = setup();
    (await nextSocket(0)).push(ticketRefused);
    (await nextSocket(1)).push(ticketRefused);
    await new Promise((r) => setTimeout(r, 20));
    expect(FakeSocket.all).toHaveLength(2);
    expect(connection.getSnapshot()).toMatchObject({
      status: 'closed',
      error: { code: 'token_invalid', final: true },
    });
    const { connection: withToken } = setup({ auth: 'token' });
    (await nextSocket(2)).push(ticketRefused);
    await new Promise((r) => setTimeout(r, 20));
    expect(FakeSocket.all).toHaveLength(3);
    expect(withToken.getSnapshot().status).toBe('closed');
  });

  test('backoff: attempts counted, nextRetryAt told, reset when open', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const { connection } = setup({ reconnectDelay: (n) => n * 1000 });
    const first = await opened(connection);
    first.drop(1011);
    expect(connection.getSnapshot()).toMatchObject({ status: 'reconnecting', attempt: 1 });
    expect(connection.getSnapshot().nextRetryAt).toBe(Date.now() + 1000);
    await vi.advanceTimersByTimeAsync(1000);
    const second = await nextSocket(1);
    second.drop(1006);
    expect(connection.getSnapshot()).toMatchObject({ attempt: 2 });
    connection.retryNow();
    const third = await nextSocket(2);
    third.establish();
    expect(connection.getSnapshot()).toMatchObject({
      status: 'open',
      attempt: 0,
      nextRetryAt: null,
    });
  });

  test('a server that accepts and drops at once is backed off, not retried every second', async () => {
    const attempts: number[] = [];
    const { connection } = setup({ reconnectDelay: (n) => (attempts.push(n), 0) });
    const first = await opened(connection);
    first.drop(1011);
    for (let i = 1; i <= 3; i++) {
      const socket = await nextSocket(i);
      socket.establish();
      expect(connection.getSnapshot()).toMatchObject({ status: 'open', attempt: 0 });
      socket.drop(1011); // e.g. recovery crashes the server: before the sync answered
    }
    expect(attempts).toEqual([1, 2, 3, 4]);
    const stable = await nextSocket(4);
    stable.establish();
    stable.push({ type: 'chat.history', messages: [], has_more: false }); // recovered
    stable.drop(1011);
    expect(attempts).toEqual([1, 2, 3, 4, 1]);
    connection.close(); // its retry timer would open a socket in the next test
  });

  test('a silent socket (half-open) is given up and replaced', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'Date'] });
    const { connection } = setup({ pingIntervalMs: 1000 });
    const socket = await opened(connection);
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.sentOf('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2000); // no pong, nothing at all
    expect(socket.closedWith).toBe(4000);
    expect(connection.getSnapshot().status).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(10);
    expect(FakeSocket.all).toHaveLength(2);
  });

  test('a ping answered at once is no silence, however late a throttled timer runs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'Date'] });
    const { connection } = setup({ pingIntervalMs: 1000 });
    const socket = await opened(connection);
    for (let i = 1; i <= 3; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      expect(socket.sentOf('ping')).toHaveLength(i);
      socket.push({ type: 'pong' });
      // a background tab: its timers run once a minute (Chrome's intensive throttling)
      vi.setSystemTime(Date.now() + 60_000);
    }
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.closedWith).toBeNull();
    expect(connection.getSnapshot().status).toBe('open');
  });

  test('close() leaves no timer behind: resends and sync retries included', async () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
    });
    const { connection } = setup({ pingIntervalMs: 1000, typingTimeoutMs: 1000 });
    const first = await opened(connection);
    first.drop();
    await vi.advanceTimersByTimeAsync(10);
    const second = await nextSocket(1);
    second.establish();
    const limited = (clientId: string) =>
      second.push({
        type: 'error',
        code: 'rate_limited',
        detail: 'slow',
        client_id: clientId,
        closing: false,
      });
    limited(second.sentOf('chat.sync')[0]!.client_id!); // a sync retry waits
    limited(connection.send('olá')); // a resend waits
    second.push({
      type: 'typing',
      room: 'r1',
      user: { id: 9, username: 'carla' },
      is_typing: true,
    });
    connection.markRead(1);
    connection.markRead(2); // the second waits for the read interval
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    connection.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  test('close() stops everything', async () => {
    const { connection } = setup();
    const socket = await opened(connection);
    connection.close();
    expect(socket.closedWith).toBe(1000);
    expect(connection.getSnapshot().status).toBe('closed');
    expect(connection.getSnapshot().error).toBeNull();
  });
});

describe('room state', () => {
  test('presence, typing, read markers, edits, deletes, reactions and room updates', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { connection } = setup({ typingTimeoutMs: 1000 });
    const socket = await opened(connection);
    const carla = { id: 9, username: 'carla' };
    socket.push({ type: 'presence', room: 'r1', user: carla, status: 'online' });
    socket.push({ type: 'typing', room: 'r1', user: carla, is_typing: true });
    socket.push({ type: 'read', room: 'r1', user: carla, message_id: 2 });
    socket.push({ type: 'read', room: 'r1', user: carla, message_id: 1 }); // never back
    let snapshot = connection.getSnapshot();
    expect(snapshot.online.map((u) => u.id)).toContain(9);
    expect(snapshot.typing).toEqual([carla]);
    expect(snapshot.readMarkers).toEqual({ 9: 2 });
    await vi.advanceTimersByTimeAsync(1100);
    expect(connection.getSnapshot().typing).toEqual([]);

    socket.push({
      type: 'chat.message.reactions',
      room: 'r1',
      id: 1,
      change_seq: 3,
      reactions: [{ emoji: '👍', count: 1, me: true }],
    });
    socket.push({
      type: 'chat.message.deleted',
      room: 'r1',
      id: 2,
      deleted_at: 'x',
      change_seq: 4,
    });
    socket.push({
      type: 'room.updated',
      room: { id: 'r1', name: 'Nova', seen_by: false, read_only: true },
    });
    socket.push({ type: 'member.removed', room: 'r1', user: { id: 9 } });
    snapshot = connection.getSnapshot();
    expect(snapshot.messages[0]?.reactions).toHaveLength(1);
    expect(snapshot.messages[1]).toMatchObject({ deleted: true, message: '' });
    expect(snapshot.room).toMatchObject({ name: 'Nova', read_only: true, seen_by: false });
    expect(snapshot.online.map((u) => u.id)).not.toContain(9);
  });

  test('a presence that changes nothing keeps the snapshot (and the online array)', async () => {
    const { connection } = setup();
    const socket = await opened(connection);
    await vi.waitFor(() => expect(connection.getSnapshot().online).toHaveLength(1));
    const maria = { id: 2, username: 'maria' };
    const carla = { id: 9, username: 'carla' };
    const before = connection.getSnapshot();
    socket.push({ type: 'presence', room: 'r1', user: maria, status: 'online' }); // already
    socket.push({ type: 'presence', room: 'r1', user: carla, status: 'offline' }); // never was
    expect(connection.getSnapshot()).toBe(before);
    socket.push({ type: 'presence', room: 'r1', user: carla, status: 'online' });
    const withCarla = connection.getSnapshot();
    expect(withCarla.online).toEqual([maria, carla]);
    socket.push({ type: 'presence', room: 'r1', user: { ...carla }, status: 'online' }); // replayed
    expect(connection.getSnapshot()).toBe(withCarla);
    socket.push({
      type: 'presence',
      room: 'r1',
      user: { ...maria, username: 'mb' },
      status: 'online',
    });
    expect(connection.getSnapshot().online).toEqual([{ id: 2, username: 'mb' }, carla]);
  });

  test('the presence answer of a reconnect keeps the online array when nobody changed', async () => {
    const { connection } = setup();
    const first = await opened(connection);
    await vi.waitFor(() => expect(connection.getSnapshot().online).toHaveLength(1));
    const online = connection.getSnapshot().online;
    first.drop();
    const second = await nextSocket(1);
    second.establish();
    second.push({ type: 'chat.history', messages: [], has_more: false });
    await new Promise((r) => setTimeout(r, 20)); // the presence answer is in
    expect(connection.getSnapshot().online).toBe(online);
  });

  test('presence frames are not kept for a presence request that failed', async () => {
    presenceDown = true;
    const { connection, calls } = setup();
    const socket = await opened(connection);
    await vi.waitFor(() => expect(calls.some((c) => c.path.endsWith('/presence/'))).toBe(true));
    await new Promise((r) => setTimeout(r, 10));
    const carla = { id: 9, username: 'carla' };
    for (let i = 0; i < 100; i++) {
      socket.push({
        type: 'presence',
        room: 'r1',
        user: carla,
        status: i % 2 ? 'offline' : 'online',
      });
    }
    // the log replays frames that overtook the REST answer; with no answer coming it would
    // grow for as long as the socket stays open
    expect(connection['presenceLog']).toBeNull();
  });

  test('actions are frames with client_ids; read markers only move forward', async () => {
    const { connection } = setup();
    connection.react(1, '👍');
    connection.markRead(2);
    const socket = await opened(connection);
    connection.unreact(1, '👍');
    connection.edit(1, 'novo');
    connection.remove(2);
    connection.markRead(1);
    connection.setTyping(true);
    connection.setTyping(true); // repeated within 2 s: not sent
    connection.setTyping(false);
    const types = socket.sent.map((f) => f.type);
    expect(types).toEqual([
      'reaction.add',
      'read',
      'reaction.remove',
      'chat.edit',
      'chat.delete',
      'typing',
      'typing',
    ]);
    expect(socket.sentOf('read')).toEqual([{ type: 'read', message_id: 2 }]);
    expect(socket.sentOf('chat.edit')[0]).toMatchObject({ message_id: 1, message: 'novo' });
  });

  test('read markers of a fast scroll are coalesced, not sent past the read budget', async () => {
    // 10/s after a burst of 30 on the server; 20 rate_limited in a row close the socket (4429)
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const { connection } = setup();
    const socket = await opened(connection);
    for (let id = 1; id <= 200; id++) connection.markRead(id);
    expect(socket.sentOf('read').map((f) => f.message_id)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(socket.sentOf('read').map((f) => f.message_id)).toEqual([1, 200]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(socket.sentOf('read')).toHaveLength(2);
  });

  test('loadOlder pages back from the oldest loaded message', async () => {
    const { connection, calls } = setup();
    await opened(connection);
    firstPage = []; // the older page's answer: empty, has_more true
    expect(await connection.loadOlder(20)).toBe(true);
    expect(calls.at(-1)?.path).toBe('/api/chat/rooms/r1/messages/?before=1&limit=20');
  });
});
