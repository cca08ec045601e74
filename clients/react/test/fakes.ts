import { INITIAL_SNAPSHOT } from '@crm-chat/client';
import type {
  ChatApiError,
  ChatClient,
  ChatConnection,
  ConnectionSnapshot,
  RoomSummary,
  User,
} from '@crm-chat/client';

export const EMPTY: ConnectionSnapshot = INITIAL_SNAPSHOT;

/** A ChatConnection whose snapshot the test moves by hand. */
export class FakeConnection {
  snapshot: ConnectionSnapshot = EMPTY;
  closed = false;
  sent: string[] = [];
  calls: unknown[][] = [];
  private listeners = new Set<() => void>();

  constructor(readonly roomId: string) {}

  getSnapshot = () => this.snapshot;
  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
  get listenerCount() {
    return this.listeners.size;
  }
  update(change: Partial<ConnectionSnapshot>) {
    this.snapshot = { ...this.snapshot, ...change };
    this.listeners.forEach((listener) => listener());
  }
  send(text: string) {
    this.sent.push(text);
    return `c-${this.sent.length}`;
  }
  setTyping = (on: boolean) => this.calls.push(['setTyping', on]);
  markRead = (id: number) => this.calls.push(['markRead', id]);
  react = (id: number, e: string) => this.calls.push(['react', id, e]);
  unreact = (id: number, e: string) => this.calls.push(['unreact', id, e]);
  edit = (id: number, text: string) => this.calls.push(['edit', id, text]);
  remove = (id: number) => this.calls.push(['remove', id]);
  retryNow = () => this.calls.push(['retryNow']);
  loadOlder = async (limit?: number) => {
    this.calls.push(['loadOlder', limit]);
    return false;
  };
  close() {
    this.closed = true;
  }
}

export class FakeClient {
  connections: FakeConnection[] = [];
  sessionEndedListeners = new Set<(reason: ChatApiError) => void>();
  loggedIn = false;
  roomsAnswer: () => Promise<RoomSummary[]> = async () => [];
  meAnswer: () => Promise<User> = async () => ({ id: 1, username: 'maria' });

  connect(roomId: string) {
    const connection = new FakeConnection(roomId);
    this.connections.push(connection);
    return connection as unknown as ChatConnection;
  }
  open() {
    return this.connections.filter((connection) => !connection.closed);
  }
  rooms() {
    return this.roomsAnswer();
  }
  isLoggedIn() {
    return this.loggedIn;
  }
  me() {
    return this.meAnswer();
  }
  async login(username: string, password: string): Promise<User> {
    if (password !== 'right') throw apiError(401, 'invalid_credentials');
    this.loggedIn = true;
    return { id: 2, username };
  }
  logout() {
    this.loggedIn = false;
  }
  on(event: 'sessionEnded', fn: (reason: ChatApiError) => void) {
    if (event !== 'sessionEnded') throw new Error(`FakeClient has no ${event as string} event`);
    this.sessionEndedListeners.add(fn);
    return () => this.sessionEndedListeners.delete(fn);
  }
  /** What ChatClient does when its refresh token is refused. */
  endSession(reason: ChatApiError) {
    this.loggedIn = false;
    this.sessionEndedListeners.forEach((fn) => fn(reason));
  }
  asClient() {
    return this as unknown as ChatClient;
  }
}

export function apiError(status: number, code: string): ChatApiError {
  return Object.assign(new Error(code), { status, code, detail: code, retryAfter: null });
}

export function message(id: number, text: string, username = 'maria') {
  return {
    type: 'chat.message',
    id,
    room: 'r1',
    message: text,
    user: { id: 7, username },
    created_at: '2026-12-04T12:00:00Z',
    client_id: null,
    edited_at: null,
    deleted: false,
    reply_to: null,
    reply_count: 0,
    last_reply_at: null,
    change_seq: 0,
    reactions: [],
  } as unknown as ConnectionSnapshot['messages'][number];
}

export function room(id: string, name: string, unread = 0): RoomSummary {
  return { id, name, unread_count: unread, mention_count: 0 } as unknown as RoomSummary;
}
