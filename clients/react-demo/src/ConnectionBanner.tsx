import { useEffect, useState } from 'react';
import type { ChatRoom } from '@crm-chat/react';
import { secondsUntil, statusText } from './texts';

/** The time, ticking twice a second while `active`: enough for a seconds countdown. */
function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = window.setInterval(() => setNow(Date.now()), 500);
    return () => window.clearInterval(timer);
  }, [active]);
  return now;
}

export function ConnectionBanner({ room }: { room: ChatRoom }) {
  const reconnecting = room.status === 'reconnecting';
  const now = useNow(reconnecting);
  const retryIn = reconnecting ? secondsUntil(room.nextRetryAt, now) : null;
  return (
    <p
      className={`status status-${room.status}`}
      data-testid="room-status"
      data-status={room.status}
    >
      {statusText(room.status, retryIn)}
      {reconnecting && (
        <>
          {' '}
          <button type="button" data-testid="retry-now" onClick={room.retryNow}>
            tentar agora
          </button>
        </>
      )}
    </p>
  );
}
