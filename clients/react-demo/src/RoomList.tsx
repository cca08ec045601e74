import { useRooms } from '@crm-chat/react';
import { Link } from './Link';
import { roomPath } from './router';
import { explainError } from './texts';

// Unread counts move while the list is shown: a fetch now and then keeps them near the truth.
const REFRESH_EVERY_MS = 15_000;

export function RoomList() {
  const { rooms, loading, error, refresh } = useRooms({ refreshEveryMs: REFRESH_EVERY_MS });
  return (
    <section className="rooms">
      <div className="rooms-header">
        <h2>Salas</h2>
        <button type="button" data-testid="rooms-refresh" onClick={() => void refresh()}>
          atualizar
        </button>
      </div>
      {error && (
        <p className="error" role="alert" data-testid="rooms-error">
          {explainError(error)}
        </p>
      )}
      {loading && rooms.length === 0 && <p>Carregando…</p>}
      {!loading && rooms.length === 0 && !error && <p>Você ainda não está em nenhuma sala.</p>}
      <ul data-testid="room-list">
        {rooms.map((room) => (
          <li key={room.id} data-testid="room-item" data-room-id={room.id}>
            <Link to={roomPath(room.id)} data-testid="room-link">
              {room.name}
            </Link>
            {room.unread_count > 0 && (
              <span className="badge" data-testid="room-unread" title="não lidas">
                {room.unread_count}
              </span>
            )}
            {room.mention_count > 0 && (
              <span className="badge mention" data-testid="room-mentions" title="menções">
                @{room.mention_count}
              </span>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
