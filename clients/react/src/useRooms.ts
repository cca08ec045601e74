import { useCallback, useEffect, useRef, useState } from 'react';
import type { RoomSummary } from '@crm-chat/client';
import { useChatClient } from './ChatProvider.js';

export interface Rooms {
  rooms: readonly RoomSummary[];
  loading: boolean;
  error: Error | null;
  refresh(): Promise<void>;
}

interface RoomsState {
  rooms: readonly RoomSummary[];
  loading: boolean;
  error: Error | null;
}

export interface RoomsOptions {
  /** Fetch again this often (ms), for counts that move while the list is shown; 0: never. */
  refreshEveryMs?: number;
}

/** The signed-in user's rooms (GET /api/chat/rooms/), fetched on mount and on refresh(). */
export function useRooms({ refreshEveryMs = 0 }: RoomsOptions = {}): Rooms {
  const client = useChatClient();
  const [state, setState] = useState<RoomsState>({ rooms: [], loading: true, error: null });
  // Only the latest request may write: an older answer arriving late would undo a refresh.
  const latest = useRef(0);

  const refresh = useCallback(async () => {
    const request = ++latest.current;
    setState((previous) => ({ ...previous, loading: true }));
    try {
      const rooms = await client.rooms();
      if (request === latest.current) setState({ rooms, loading: false, error: null });
    } catch (error) {
      if (request === latest.current)
        setState((previous) => ({ ...previous, loading: false, error: error as Error }));
    }
  }, [client]);

  useEffect(() => {
    void refresh();
    return () => {
      latest.current++; // unmounted: drop whatever is still in flight
    };
  }, [refresh]);

  useEffect(() => {
    if (refreshEveryMs <= 0) return;
    const timer = setInterval(() => void refresh(), refreshEveryMs);
    return () => clearInterval(timer);
  }, [refresh, refreshEveryMs]);

  return { ...state, refresh };
}
