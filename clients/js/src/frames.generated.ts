/* eslint-disable */
// GENERATED from chat/frames.schema.json by `npm run generate` (clients/js): do not edit.
// A test fails when this file is stale; a new server frame type fails tsc until the
// client's dispatch (src/connection.ts) handles it.

/**
 * Every frame the server sends, told apart by type.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ServerFrame".
 */
export type ServerFrame =
  | ConnectionEstablishedFrame
  | ChatMessage
  | PublicChatMessage
  | HistoryFrame
  | ChangesFrame
  | MessageUpdatedFrame
  | MessageDeletedFrame
  | MessageReactionsFrame
  | ErrorFrame
  | PongFrame
  | PresenceFrame
  | TypingFrame
  | ReadFrame
  | MemberAddedFrame
  | MemberRemovedFrame
  | RoomUpdatedFrame
  | NotificationFrame;
/**
 * Every frame a client may send.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ClientFrame".
 */
export type ClientFrame =
  | ChatMessageRequest
  | PingRequest
  | SyncRequest
  | SyncChangesRequest
  | EditRequest
  | DeleteRequest
  | TypingRequest
  | ReadRequest
  | ReactionAddRequest
  | ReactionRemoveRequest;

/**
 * The chat's WebSocket frames, both ways (docs/protocol.md; chat/protocol.py builds the server's). tests/test_frame_schema.py checks the server against it; clients/js generates its types from it (npm run generate).
 */
export interface ChatFrames {
  server?: ServerFrame;
  client?: ClientFrame;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ConnectionEstablishedFrame".
 */
export interface ConnectionEstablishedFrame {
  type: 'connection.established';
  room: EstablishedRoom;
  user: User | PublicUser;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "EstablishedRoom".
 */
export interface EstablishedRoom {
  id: string;
  name: string;
  type: 'community' | 'group' | 'direct' | 'record' | 'public';
  /**
   * the room's at the handshake; absent in the public room
   */
  change_seq?: number;
}
/**
 * Who did something (a person's has no is_bot).
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "User".
 */
export interface User {
  id: number;
  username: string;
  /**
   * only on service accounts; read a missing one as false
   */
  is_bot?: true;
}
/**
 * A display name of the public test room: no account.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "PublicUser".
 */
export interface PublicUser {
  id: null;
  username: string;
}
/**
 * A stored message: the chat.message frame, and every item of history, changes and notifications.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ChatMessage".
 */
export interface ChatMessage {
  type: 'chat.message';
  /**
   * a stored message's id
   */
  id: number;
  /**
   * the room's id (a UUID)
   */
  room: string;
  /**
   * empty on a tombstone
   */
  message: string;
  user: User;
  /**
   * UTC ISO 8601 with microseconds and a Z
   */
  created_at: string;
  client_id: string | null;
  edited_at: string | null;
  deleted: boolean;
  reply_to: number | null;
  reply_count: number;
  last_reply_at: string | null;
  change_seq: number;
  mentions: number[];
  attachments: Attachment[];
  reactions: Reaction[];
  kind: 'user' | 'system';
  /**
   * a system message's facts
   */
  data: {
    [k: string]: unknown | undefined;
  } | null;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "Attachment".
 */
export interface Attachment {
  id: number;
  name: string;
  content_type: string;
  size: number;
  url: string;
  thumbnail_url: string | null;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "Reaction".
 */
export interface Reaction {
  emoji: string;
  count: number;
  me: boolean;
}
/**
 * The public test room's echo: nothing stored, so no id.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "PublicChatMessage".
 */
export interface PublicChatMessage {
  type: 'chat.message';
  id: null;
  room: 'teste';
  message: string;
  user: PublicUser;
  /**
   * UTC ISO 8601 with microseconds and a Z
   */
  created_at: string;
  client_id: string | null;
}
/**
 * Answer to chat.sync: up to 200 messages after its cursor, oldest first.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "HistoryFrame".
 */
export interface HistoryFrame {
  type: 'chat.history';
  messages: ChatMessage[];
  has_more: boolean;
}
/**
 * Answer to chat.sync_changes: messages changed after its cursor, as they are now, in change order.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ChangesFrame".
 */
export interface ChangesFrame {
  type: 'chat.changes';
  messages: ChatMessage[];
  has_more: boolean;
}
/**
 * Every field of the message but reactions.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "MessageUpdatedFrame".
 */
export interface MessageUpdatedFrame {
  type: 'chat.message.updated';
  /**
   * a stored message's id
   */
  id: number;
  /**
   * the room's id (a UUID)
   */
  room: string;
  /**
   * empty on a tombstone
   */
  message: string;
  user: User;
  /**
   * UTC ISO 8601 with microseconds and a Z
   */
  created_at: string;
  client_id: string | null;
  edited_at: string | null;
  deleted: boolean;
  reply_to: number | null;
  reply_count: number;
  last_reply_at: string | null;
  change_seq: number;
  mentions: number[];
  attachments: Attachment[];
  kind: 'user' | 'system';
  /**
   * a system message's facts
   */
  data: {
    [k: string]: unknown | undefined;
  } | null;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "MessageDeletedFrame".
 */
export interface MessageDeletedFrame {
  type: 'chat.message.deleted';
  /**
   * a stored message's id
   */
  id: number;
  /**
   * the room's id (a UUID)
   */
  room: string;
  /**
   * UTC ISO 8601 with microseconds and a Z
   */
  deleted_at: string;
  change_seq: number;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "MessageReactionsFrame".
 */
export interface MessageReactionsFrame {
  type: 'chat.message.reactions';
  /**
   * the room's id (a UUID)
   */
  room: string;
  /**
   * a stored message's id
   */
  id: number;
  reactions: Reaction[];
  change_seq: number;
}
/**
 * closing: the server closes the socket right after, with close_code; client_id: the answered frame's.
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ErrorFrame".
 */
export interface ErrorFrame {
  type: 'error';
  code: string;
  detail: string;
  client_id?: string;
  closing: boolean;
  close_code?: number;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "PongFrame".
 */
export interface PongFrame {
  type: 'pong';
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "PresenceFrame".
 */
export interface PresenceFrame {
  type: 'presence';
  /**
   * the room's id (a UUID)
   */
  room: string;
  user: User;
  status: 'online' | 'offline';
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "TypingFrame".
 */
export interface TypingFrame {
  type: 'typing';
  /**
   * the room's id (a UUID)
   */
  room: string;
  user: User;
  is_typing: boolean;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ReadFrame".
 */
export interface ReadFrame {
  type: 'read';
  /**
   * the room's id (a UUID)
   */
  room: string;
  user: User;
  /**
   * a stored message's id
   */
  message_id: number;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "MemberAddedFrame".
 */
export interface MemberAddedFrame {
  type: 'member.added';
  /**
   * the room's id (a UUID)
   */
  room: string;
  user: User;
  role: 'member' | 'admin';
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "MemberRemovedFrame".
 */
export interface MemberRemovedFrame {
  type: 'member.removed';
  /**
   * the room's id (a UUID)
   */
  room: string;
  user: RemovedUser;
}
export interface RemovedUser {
  id: number;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "RoomUpdatedFrame".
 */
export interface RoomUpdatedFrame {
  type: 'room.updated';
  room: UpdatedRoom;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "UpdatedRoom".
 */
export interface UpdatedRoom {
  id: string;
  name: string;
  seen_by: boolean;
  read_only: boolean;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "NotificationFrame".
 */
export interface NotificationFrame {
  type: 'notification';
  notification: Notification;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "Notification".
 */
export interface Notification {
  id: number;
  kind: 'mention' | 'reply' | 'direct';
  room: NotificationRoom;
  message: ChatMessage;
  /**
   * UTC ISO 8601 with microseconds and a Z
   */
  created_at: string;
  read: boolean;
}
export interface NotificationRoom {
  id: string;
  name: string;
}
/**
 * type may be left out (the Channels tutorial's {"message": ...}).
 *
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ChatMessageRequest".
 */
export interface ChatMessageRequest {
  type?: 'chat.message';
  message: string;
  client_id?: string;
  /**
   * a stored message's id
   */
  reply_to?: number;
  /**
   * at most 10 upload ids
   */
  attachments?: number[];
  /**
   * public room only: a display name
   */
  username?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "PingRequest".
 */
export interface PingRequest {
  type: 'ping';
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "SyncRequest".
 */
export interface SyncRequest {
  type: 'chat.sync';
  after?: number;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "SyncChangesRequest".
 */
export interface SyncChangesRequest {
  type: 'chat.sync_changes';
  after?: number;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "EditRequest".
 */
export interface EditRequest {
  type: 'chat.edit';
  /**
   * a stored message's id
   */
  message_id: number;
  message: string;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "DeleteRequest".
 */
export interface DeleteRequest {
  type: 'chat.delete';
  /**
   * a stored message's id
   */
  message_id: number;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "TypingRequest".
 */
export interface TypingRequest {
  type: 'typing';
  is_typing?: boolean;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ReadRequest".
 */
export interface ReadRequest {
  type: 'read';
  /**
   * a stored message's id
   */
  message_id: number;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ReactionAddRequest".
 */
export interface ReactionAddRequest {
  type: 'reaction.add';
  /**
   * a stored message's id
   */
  message_id: number;
  emoji: string;
  client_id?: string;
}
/**
 * This interface was referenced by `ChatFrames`'s JSON-Schema
 * via the `definition` "ReactionRemoveRequest".
 */
export interface ReactionRemoveRequest {
  type: 'reaction.remove';
  /**
   * a stored message's id
   */
  message_id: number;
  emoji: string;
  client_id?: string;
}
