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

/** What the client needs of a WebSocket: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;
