import { useCallback, useEffect, useState, useSyncExternalStore } from 'react';
import { INITIAL_SNAPSHOT, type ChatConnection, type ConnectionSnapshot } from '@crm-chat/client';
import { useChatClient } from './ChatProvider.js';

const subscribeToNothing = () => () => {};
const notConnected = () => INITIAL_SNAPSHOT; // before the effect has connected

export interface ChatRoom extends ConnectionSnapshot {
  send(text: string, opts?: { replyTo?: number }): string | null;
  setTyping(isTyping: boolean): void;
  markRead(messageId: number): void;
  react(messageId: number, emoji: string): void;
  unreact(messageId: number, emoji: string): void;
  edit(messageId: number, text: string): void;
  remove(messageId: number): void;
  loadOlder(limit?: number): Promise<boolean>;
  retryNow(): void;
}

/**
 * One connection per mounted room: opened in an effect and closed by its cleanup, so
 * StrictMode's mount-unmount-mount and a change of `roomId` each leave exactly one open.
 */
function useRoomConnection(roomId: string): ChatConnection | null {
  const client = useChatClient();
  const [connection, setConnection] = useState<ChatConnection | null>(null);
  useEffect(() => {
    const opened = client.connect(roomId);
    setConnection(opened);
    return () => {
      opened.close();
      setConnection(null);
    };
  }, [client, roomId]);
  // Until the effect ran for a new roomId, the old room's connection must not be shown.
  return connection && connection.roomId === roomId ? connection : null;
}

export function useChatRoom(roomId: string): ChatRoom {
  const connection = useRoomConnection(roomId);
  const subscribe = useCallback(
    (listener: () => void) => (connection ? connection.subscribe(listener) : subscribeToNothing()),
    [connection],
  );
  const getSnapshot = connection ? connection.getSnapshot.bind(connection) : notConnected;
  const snapshot = useSyncExternalStore(subscribe, getSnapshot, getSnapshot);

  const send = useCallback(
    (text: string, opts?: { replyTo?: number }) =>
      connection ? connection.send(text, opts) : null,
    [connection],
  );
  const setTyping = useCallback((on: boolean) => connection?.setTyping(on), [connection]);
  const markRead = useCallback((id: number) => connection?.markRead(id), [connection]);
  const react = useCallback((id: number, e: string) => connection?.react(id, e), [connection]);
  const unreact = useCallback((id: number, e: string) => connection?.unreact(id, e), [connection]);
  const edit = useCallback((id: number, text: string) => connection?.edit(id, text), [connection]);
  const remove = useCallback((id: number) => connection?.remove(id), [connection]);
  const loadOlder = useCallback(
    (limit?: number) => (connection ? connection.loadOlder(limit) : Promise.resolve(false)),
    [connection],
  );
  const retryNow = useCallback(() => connection?.retryNow(), [connection]);

  return {
    ...snapshot,
    send,
    setTyping,
    markRead,
    react,
    unreact,
    edit,
    remove,
    loadOlder,
    retryNow,
  };
}
