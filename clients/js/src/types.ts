import type { ChatMessage, EstablishedRoom, User } from './frames.generated.js';

/** GET /api/auth/me/: the logged-in account (a User with its profile). */
export interface Account extends User {
  first_name: string;
  last_name: string;
  email: string;
}

/** An item of GET /api/chat/rooms/. */
export interface RoomSummary {
  id: string;
  name: string;
  type: 'community' | 'group' | 'direct' | 'record';
  created_at: string;
  seen_by: boolean;
  member_count: number;
  unread_count: number;
  mention_count: number;
  last_message: ChatMessage | null;
  record: { type: string; id: string | number; label: string } | null;
  read_only: boolean;
  retention_days: number | null;
}

/** The room as the socket told it: connection.established, then room.updated. */
export interface RoomInfo extends EstablishedRoom {
  seen_by?: boolean;
  read_only?: boolean;
}

export interface HistoryPage {
  messages: ChatMessage[];
  hasMore: boolean;
}

/** An event handler checked as a method (bivariantly): the browser's and `ws`'s handlers take
 * richer events (Event, MessageEvent, CloseEvent), which a plain function type would refuse. */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** What the client needs of a WebSocket: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason?: string }> | null;
  onerror: Handler<unknown> | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;
