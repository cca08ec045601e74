export { ChatProvider, useChatClient, useSession } from './ChatProvider.js';
export type { ChatProviderProps, Session, SessionStatus } from './ChatProvider.js';
export { useChatRoom } from './useChatRoom.js';
export type { ChatRoom } from './useChatRoom.js';
export { useRooms } from './useRooms.js';
export type { Rooms, RoomsOptions } from './useRooms.js';
export { sessionEndedRelay } from './sessionEndedRelay.js';
export type { SessionEndedRelay } from './sessionEndedRelay.js';
