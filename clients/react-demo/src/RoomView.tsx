import { useEffect } from 'react';
import { useChatRoom } from '@crm-chat/react';
import { Composer } from './Composer';
import { ConnectionBanner } from './ConnectionBanner';
import { Link } from './Link';
import { MessageList } from './MessageList';
import { roomsPath } from './router';
import { CODE_TEXTS, explainError, typingText } from './texts';

export function RoomView({ roomId }: { roomId: string }) {
  const room = useChatRoom(roomId);
  const lastId = room.messages.length ? room.messages[room.messages.length - 1].id : null;
  const { markRead, status } = room;

  // What is on screen is read: the room list's unread count drops to match.
  useEffect(() => {
    if (lastId !== null && status === 'open') markRead(lastId);
  }, [lastId, status, markRead]);

  const others = room.typing.filter((user) => user.id !== room.me?.id);
  const refused = room.error?.final ? room.error : null;
  const readOnly = Boolean(room.room?.read_only);

  return (
    <section className="room" data-testid="room" data-room-id={roomId}>
      <nav>
        <Link to={roomsPath} data-testid="back-to-rooms">
          ← salas
        </Link>
      </nav>
      <h2 data-testid="room-name">{room.room?.name ?? 'Sala'}</h2>
      <ConnectionBanner room={room} />
      {room.error && (
        <p className="error" role="alert" data-testid="room-error" data-code={room.error.code}>
          {explainError(room.error)}
        </p>
      )}
      {!refused && (
        <div className="room-body">
          <div className="conversation">
            <MessageList room={room} />
            <p className="typing" data-testid="typing-indicator" aria-live="polite">
              {typingText(others)}
            </p>
            {readOnly ? (
              <p className="notice" data-testid="read-only">
                {CODE_TEXTS.room_read_only}
              </p>
            ) : (
              <Composer room={room} />
            )}
          </div>
          <aside className="presence">
            <h3>Online</h3>
            <ul data-testid="presence-list">
              {room.online.map((user) => (
                <li key={user.id} data-testid="presence-user">
                  {user.username}
                </li>
              ))}
            </ul>
          </aside>
        </div>
      )}
    </section>
  );
}
