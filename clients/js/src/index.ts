export { ChatClient, type ChatClientEvents, type ChatClientOptions } from './client.js';
export {
  ChatConnection,
  type ChatError,
  type ConnectionEvents,
  type ConnectionOptions,
  type ConnectionSnapshot,
  type ConnectionStatus,
  type HistoryEvent,
  INITIAL_SNAPSHOT,
  type PendingMessage,
} from './connection.js';
export { ChatApiError } from './errors.js';
export { backoffDelay, closeDecision, MAX_BACKOFF_MS, type CloseDecision } from './policy.js';
export { memoryTokenStore, sessionTokenStore, type TokenStore, type Tokens } from './tokens.js';
export { mergeMessages } from './timeline.js';
export type {
  Account,
  HistoryPage,
  RoomInfo,
  RoomSummary,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
export type * from './frames.generated.js';
