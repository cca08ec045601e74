import { describe, expect, test, vi } from 'vitest';
import { ChatApiError, ChatClient, memoryTokenStore } from '../../src/index.js';
import { fakeFetch } from '../fakes.js';

const BASE = 'http://chat.test';

function clientWith(route: Parameters<typeof fakeFetch>[0], onSessionEnded = vi.fn()) {
  const tokens = memoryTokenStore({ access: 'old', refresh: 'r1' });
  const { fetch, calls } = fakeFetch(route);
  const client = new ChatClient({ baseUrl: BASE, fetch, tokenStore: tokens, onSessionEnded });
  return { client, calls, tokens, onSessionEnded };
}

const expired = { status: 401, body: { code: 'token_expired', detail: 'expired' } };

describe('request', () => {
  test('an expired access token is refreshed once and the request repeated', async () => {
    const { client, calls, tokens } = clientWith(({ path, auth }) => {
      if (path === '/api/auth/token/refresh/') return { status: 200, body: { access: 'new' } };
      return auth === 'Bearer new' ? { status: 200, body: { id: 1, username: 'admin' } } : expired;
    });
    expect((await client.me()).username).toBe('admin');
    expect(calls.map((c) => c.path)).toEqual([
      '/api/auth/me/',
      '/api/auth/token/refresh/',
      '/api/auth/me/',
    ]);
    expect(tokens.load()).toEqual({ access: 'new', refresh: 'r1' }); // not rotated: kept
  });

  test('concurrent requests share one refresh', async () => {
    const { client, calls } = clientWith(({ path, auth }) => {
      if (path === '/api/auth/token/refresh/') return { status: 200, body: { access: 'new' } };
      return auth === 'Bearer new' ? { status: 200, body: [] } : expired;
    });
    await Promise.all([client.rooms(), client.rooms(), client.me(), client.rooms()]);
    expect(calls.filter((c) => c.path === '/api/auth/token/refresh/')).toHaveLength(1);
  });

  test('a rotated refresh token is kept', async () => {
    const { client, tokens } = clientWith(({ path, auth }) => {
      if (path === '/api/auth/token/refresh/')
        return { status: 200, body: { access: 'new', refresh: 'r2' } };
      return auth === 'Bearer new' ? { status: 200, body: {} } : expired;
    });
    await client.me();
    expect(tokens.load()).toEqual({ access: 'new', refresh: 'r2' });
  });

  test('a refused refresh ends the session: tokens cleared, onSessionEnded once', async () => {
    const { client, tokens, onSessionEnded } = clientWith(({ path }) =>
      path === '/api/auth/token/refresh/'
        ? { status: 401, body: { code: 'token_invalid', detail: 'Token is invalid' } }
        : expired,
    );
    const results = await Promise.allSettled([client.me(), client.rooms()]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const reason = (results[0] as PromiseRejectedResult).reason as ChatApiError;
    expect(reason).toBeInstanceOf(ChatApiError);
    expect(reason.code).toBe('token_invalid');
    expect(tokens.load()).toBeNull();
    expect(client.isLoggedIn()).toBe(false);
    expect(onSessionEnded).toHaveBeenCalledTimes(1);
  });

  test("client.on('sessionEnded') is told with onSessionEnded; it unsubscribes", async () => {
    const { client, onSessionEnded, tokens } = clientWith(({ path }) =>
      path === '/api/auth/token/refresh/'
        ? { status: 401, body: { code: 'token_invalid', detail: 'Token is invalid' } }
        : expired,
    );
    const ended = vi.fn();
    const gone = vi.fn();
    client.on('sessionEnded', ended);
    client.on('sessionEnded', gone)();
    await expect(client.me()).rejects.toMatchObject({ code: 'token_invalid' });
    expect(ended).toHaveBeenCalledTimes(1);
    expect(ended.mock.calls[0]![0]).toBe(onSessionEnded.mock.calls[0]![0]);
    expect(gone).not.toHaveBeenCalled();
    tokens.save({ access: 'old', refresh: 'r1' }); // logged in again, ended again
    await expect(client.rooms()).rejects.toMatchObject({ code: 'token_invalid' });
    expect(ended).toHaveBeenCalledTimes(2);
  });

  test('a logout while a refresh is on its way is not undone by its answer', async () => {
    let client: ChatClient | undefined;
    const setup = clientWith(({ path, auth }) => {
      if (auth === 'Bearer new') return { status: 200, body: { id: 1, username: 'admin' } };
      if (path !== '/api/auth/token/refresh/') return expired;
      client!.logout(); // the user logs out while the refresh is in flight
      return { status: 200, body: { access: 'new', refresh: 'r2' } };
    });
    client = setup.client;
    await expect(client.me()).rejects.toBeInstanceOf(ChatApiError);
    expect(setup.tokens.load()).toBeNull();
    expect(client.isLoggedIn()).toBe(false);
  });

  test('a 401 answered after another caller refreshed reuses the new token', async () => {
    // Two requests leave with the old token; the second's 401 arrives after the first's refresh
    // completed: refreshing again would spend a (rotated) refresh token for nothing.
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    const tokens = memoryTokenStore({ access: 'old', refresh: 'r1' });
    const calls: string[] = [];
    const fetch = (async (input: unknown, init: RequestInit = {}) => {
      const path = new URL(String(input)).pathname;
      const auth = (init.headers as Record<string, string>).Authorization ?? null;
      calls.push(`${path} ${auth}`);
      if (path === '/api/auth/token/refresh/')
        return Response.json({ access: `new${calls.length}`, refresh: `r${calls.length}` });
      if (path === '/api/auth/me/' && auth === 'Bearer old') await slowGate;
      if (auth === 'Bearer old') return Response.json(expired.body, { status: 401 });
      return Response.json({ id: 1, username: 'admin' });
    }) as typeof globalThis.fetch;
    const client = new ChatClient({ baseUrl: BASE, fetch, tokenStore: tokens });
    const slow = client.me();
    await client.rooms(); // 401, refresh, repeated
    releaseSlow();
    await slow;
    expect(calls.filter((c) => c.startsWith('/api/auth/token/refresh/'))).toHaveLength(1);
  });

  test('errors carry code, detail, fields and Retry-After', async () => {
    const { client } = clientWith(({ path }) =>
      path.includes('messages')
        ? {
            status: 400,
            body: { code: 'invalid_request', detail: 'limit: bad', fields: { limit: ['bad'] } },
          }
        : {
            status: 429,
            body: { code: 'rate_limited', detail: 'slow down' },
            headers: { 'Retry-After': '7' },
          },
    );
    const invalid = await client.history('r1', { limit: 0 }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({
      status: 400,
      code: 'invalid_request',
      fields: { limit: ['bad'] },
    });
    const limited = await client.rooms().catch((e: unknown) => e);
    expect(limited).toMatchObject({ status: 429, code: 'rate_limited', retryAfter: 7 });
  });

  test('an unreachable server is network_error and keeps the session', async () => {
    const tokens = memoryTokenStore({ access: 'a', refresh: 'r' });
    const fetch = (async () => {
      throw new TypeError('fetch failed');
    }) as unknown as typeof globalThis.fetch;
    const client = new ChatClient({ baseUrl: BASE, fetch, tokenStore: tokens });
    await expect(client.rooms()).rejects.toMatchObject({ status: 0, code: 'network_error' });
    expect(client.isLoggedIn()).toBe(true);
  });
});

describe('login and history', () => {
  test('login stores the tokens and answers the user', async () => {
    const tokens = memoryTokenStore();
    const { fetch, calls } = fakeFetch(({ path }) =>
      path === '/api/auth/token/'
        ? { status: 200, body: { access: 'a', refresh: 'r' } }
        : { status: 200, body: { id: 1, username: 'admin' } },
    );
    const client = new ChatClient({ baseUrl: `${BASE}/`, fetch, tokenStore: tokens });
    expect((await client.login('admin', 'pw')).id).toBe(1);
    expect(tokens.load()).toEqual({ access: 'a', refresh: 'r' });
    expect(calls[1]?.auth).toBe('Bearer a');
    client.logout();
    expect(client.isLoggedIn()).toBe(false);
  });

  test('history passes the cursors and answers messages and hasMore', async () => {
    const { client, calls } = clientWith(() => ({
      status: 200,
      body: { results: [], has_more: true },
    }));
    expect(await client.history('r 1', { before: 71, limit: 50 })).toEqual({
      messages: [],
      hasMore: true,
    });
    expect(calls[0]?.path).toBe('/api/chat/rooms/r%201/messages/?before=71&limit=50');
  });
});
