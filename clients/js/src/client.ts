import { ChatConnection, type ConnectionOptions } from './connection.js';
import { ChatApiError, networkError } from './errors.js';
import type { ChatMessage, Notification, User } from './frames.generated.js';
import { memoryTokenStore, type TokenStore, type Tokens } from './tokens.js';
import type { Account, HistoryPage, RoomSummary, WebSocketConstructor } from './types.js';

export interface ChatClientOptions {
  /** The backend's origin, e.g. http://127.0.0.1:8000 (sockets go to its ws:// twin). */
  baseUrl: string;
  tokenStore?: TokenStore;
  fetch?: typeof fetch;
  WebSocket?: WebSocketConstructor;
  /** The refresh token no longer works (or the account was refused): tokens are cleared.
   * The same as `client.on('sessionEnded', fn)`. */
  onSessionEnded?: (reason: ChatApiError) => void;
}

export interface ChatClientEvents {
  /** Each notification once, whichever of the client's connections brought it (every open
   * socket of the user gets it). */
  notification: Notification;
  /** The refresh token no longer works (or the account was refused): tokens are cleared. */
  sessionEnded: ChatApiError;
}

/** Notification ids remembered to tell each once: more than any burst the open sockets can
 * deliver out of step, few enough to stay small however long the page lives. */
const SEEN_NOTIFICATIONS = 500;

interface RawResponse {
  status: number;
  data: unknown;
  retryAfter: number | null;
}

/** REST and sockets of one logged-in user. */
export class ChatClient {
  readonly baseUrl: string;
  private readonly tokens: TokenStore;
  private readonly fetchImpl: typeof fetch;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly onSessionEnded: ((reason: ChatApiError) => void) | undefined;
  private refreshing: Promise<string> | null = null;
  private readonly connections = new Set<ChatConnection>();
  private readonly listeners = new Map<keyof ChatClientEvents, Set<(value: never) => void>>();
  /** Insertion-ordered: the oldest id goes first when full. */
  private readonly seenNotifications = new Set<number>();

  constructor(options: ChatClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.tokens = options.tokenStore ?? memoryTokenStore();
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (!fetchImpl) throw new Error('no fetch: pass options.fetch');
    this.fetchImpl = fetchImpl.bind(globalThis);
    this.WebSocketImpl =
      options.WebSocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ??
      undefined;
    this.onSessionEnded = options.onSessionEnded;
  }

  /** Returns the function that unsubscribes. */
  on<K extends keyof ChatClientEvents>(
    event: K,
    fn: (value: ChatClientEvents[K]) => void,
  ): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as (value: never) => void);
    return () => set.delete(fn as (value: never) => void);
  }

  /** @internal A connection's notification frame: told once per id across connections. */
  notificationReceived(notification: Notification): void {
    const seen = this.seenNotifications;
    if (seen.has(notification.id)) return;
    seen.add(notification.id);
    if (seen.size > SEEN_NOTIFICATIONS) seen.delete(seen.values().next().value!);
    this.emit('notification', notification);
  }

  async login(username: string, password: string): Promise<Account> {
    const response = await this.call('POST', '/api/auth/token/', { username, password }, null);
    const tokens = this.answer<Tokens>(response);
    this.tokens.save({ access: tokens.access, refresh: tokens.refresh });
    return this.me();
  }

  /** Forgets the tokens and closes this client's connections. */
  logout(): void {
    this.tokens.save(null);
    for (const connection of [...this.connections]) connection.close();
  }

  isLoggedIn(): boolean {
    return this.tokens.load() !== null;
  }

  me(): Promise<Account> {
    return this.request<Account>('GET', '/api/auth/me/');
  }

  /** A JSON request with the access token; an expired token is refreshed once and the request
   * repeated. Any other 401 ends the session. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const access = this.tokens.load()?.access;
    if (!access) throw this.endSession(notLoggedIn());
    let response = await this.call(method, path, body, access);
    if (response.status === 401 && errorCode(response.data) === 'token_expired') {
      // Another caller may have refreshed while this request was on its way: use its token
      // rather than spend the refresh token again.
      const current = this.tokens.load()?.access;
      const fresh = current && current !== access ? current : await this.refreshAccessToken();
      response = await this.call(method, path, body, fresh);
    }
    if (response.status === 401) throw this.endSession(apiError(response));
    return this.answer<T>(response);
  }

  /** One refresh at a time: concurrent callers share it (a refresh token is spent once when
   * the server rotates them). */
  refreshAccessToken(): Promise<string> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refreshOnce(): Promise<string> {
    const tokens = this.tokens.load();
    if (!tokens) throw this.endSession(notLoggedIn());
    const response = await this.call(
      'POST',
      '/api/auth/token/refresh/',
      { refresh: tokens.refresh },
      null,
    );
    if (response.status === 400 || response.status === 401) {
      throw this.endSession(apiError(response));
    }
    const answer = this.answer<{ access: string; refresh?: string }>(response);
    // A logout (or a new login) while the refresh was on its way wins: saving now would bring
    // back the session the user just ended (or replace the new one).
    const now = this.tokens.load();
    if (now?.refresh !== tokens.refresh) {
      if (now) return now.access;
      throw notLoggedIn();
    }
    // The server may rotate refresh tokens (simplejwt's ROTATE_REFRESH_TOKENS): keep the new one.
    this.tokens.save({ access: answer.access, refresh: answer.refresh ?? tokens.refresh });
    return answer.access;
  }

  /** A single-use ticket for ?ticket= (keeps tokens out of socket URLs and server logs). */
  async ticket(): Promise<string> {
    const answer = await this.request<{ ticket: string }>('POST', '/api/chat/ws-ticket/');
    return answer.ticket;
  }

  rooms(): Promise<RoomSummary[]> {
    return this.request<RoomSummary[]>('GET', '/api/chat/rooms/');
  }

  /** A page of a room's history, oldest first (docs/protocol.md, "History cursors"). */
  async history(
    roomId: string,
    opts: { before?: number; after?: number; limit?: number } = {},
  ): Promise<HistoryPage> {
    const page = await this.request<{ results: ChatMessage[]; has_more: boolean }>(
      'GET',
      `/api/chat/rooms/${encodeURIComponent(roomId)}/messages/${query(opts)}`,
    );
    return { messages: page.results, hasMore: page.has_more };
  }

  /** Messages changed after a change_seq, as they are now, in change order. */
  async changes(roomId: string, opts: { after: number; limit?: number }): Promise<HistoryPage> {
    const page = await this.request<{ results: ChatMessage[]; has_more: boolean }>(
      'GET',
      `/api/chat/rooms/${encodeURIComponent(roomId)}/changes/${query(opts)}`,
    );
    return { messages: page.results, hasMore: page.has_more };
  }

  async presence(roomId: string): Promise<User[]> {
    const answer = await this.request<{ online: User[] }>(
      'GET',
      `/api/chat/rooms/${encodeURIComponent(roomId)}/presence/`,
    );
    return answer.online;
  }

  connect(roomId: string, options: ConnectionOptions = {}): ChatConnection {
    const connection = new ChatConnection(this, roomId, options, () =>
      this.connections.delete(connection),
    );
    this.connections.add(connection);
    return connection;
  }

  /** @internal The socket URL of a room, authenticated by a fresh ticket or the access token. */
  async socketUrl(roomId: string, auth: 'ticket' | 'token'): Promise<string> {
    const base = this.baseUrl.replace(/^http/, 'ws');
    const path = `${base}/ws/chat/${encodeURIComponent(roomId)}/`;
    if (auth === 'ticket') return `${path}?ticket=${encodeURIComponent(await this.ticket())}`;
    const access = this.tokens.load()?.access;
    if (!access) throw this.endSession(notLoggedIn());
    return `${path}?token=${encodeURIComponent(access)}`;
  }

  /** @internal */
  newSocket(url: string) {
    if (!this.WebSocketImpl) throw new Error('no WebSocket: pass options.WebSocket');
    return new this.WebSocketImpl(url);
  }

  private endSession(reason: ChatApiError): ChatApiError {
    const hadSession = this.tokens.load() !== null;
    this.tokens.save(null);
    if (hadSession) {
      this.onSessionEnded?.(reason);
      this.emit('sessionEnded', reason);
    }
    return reason;
  }

  private emit<K extends keyof ChatClientEvents>(event: K, value: ChatClientEvents[K]): void {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      (fn as (value: ChatClientEvents[K]) => void)(value);
    }
  }

  private async call(
    method: string,
    path: string,
    body: unknown,
    access: string | null,
  ): Promise<RawResponse> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (access) headers.Authorization = `Bearer ${access}`;
    let response: Response;
    try {
      response = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (cause) {
      throw networkError(cause);
    }
    const text = await response.text();
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { code: 'invalid_response', detail: text.slice(0, 200) };
      }
    }
    return { status: response.status, data, retryAfter: retryAfterSeconds(response) };
  }

  private answer<T>(response: RawResponse): T {
    if (response.status >= 200 && response.status < 300) return response.data as T;
    throw apiError(response);
  }
}

function apiError(response: RawResponse): ChatApiError {
  const body = (response.data ?? {}) as {
    code?: unknown;
    detail?: unknown;
    fields?: Record<string, string[]>;
  };
  return new ChatApiError(
    response.status,
    typeof body.code === 'string' ? body.code : `http_${response.status}`,
    typeof body.detail === 'string' ? body.detail : `HTTP ${response.status}`,
    body.fields,
    response.retryAfter,
  );
}

function errorCode(data: unknown): string | undefined {
  const code = (data as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function notLoggedIn(): ChatApiError {
  return new ChatApiError(401, 'authentication_required', 'not logged in');
}

function retryAfterSeconds(response: Response): number | null {
  const header = response.headers?.get?.('Retry-After');
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds;
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

function query(params: Record<string, number | undefined>): string {
  const pairs = Object.entries(params).filter(([, value]) => value !== undefined);
  if (pairs.length === 0) return '';
  return `?${pairs.map(([key, value]) => `${key}=${encodeURIComponent(String(value))}`).join('&')}`;
}
