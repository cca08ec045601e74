import { useLayoutEffect, useRef, useState } from 'react';
import type { ChatMessage, PendingMessage } from '@crm-chat/client';
import type { ChatRoom } from '@crm-chat/react';
import { explainError } from './texts';

const NEAR_EDGE_PX = 48;

const time = (iso: string) =>
  new Date(iso).toLocaleTimeString('pt-BR', { hour: '2-digit', minute: '2-digit' });

/**
 * The room's messages, oldest first. Scrolling to the top loads older ones and keeps the
 * view where it was; a new message scrolls down only when the reader already was at the end.
 */
export function MessageList({ room }: { room: ChatRoom }) {
  const box = useRef<HTMLDivElement>(null);
  const atEnd = useRef(true);
  const before = useRef<{ firstId: number | undefined; height: number; top: number } | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const loading = useRef(false); // scroll events come faster than re-renders
  const firstId = room.messages[0]?.id;

  const loadOlder = async () => {
    const element = box.current;
    if (!element || loading.current || !room.hasOlder) return;
    before.current = { firstId, height: element.scrollHeight, top: element.scrollTop };
    loading.current = true;
    setLoadingOlder(true);
    try {
      await room.loadOlder();
    } finally {
      loading.current = false;
      setLoadingOlder(false);
    }
  };

  const onScroll = () => {
    const element = box.current!;
    atEnd.current = element.scrollHeight - element.scrollTop - element.clientHeight < NEAR_EDGE_PX;
    if (element.scrollTop < NEAR_EDGE_PX) void loadOlder();
  };

  useLayoutEffect(() => {
    const element = box.current;
    if (!element) return;
    const kept = before.current;
    if (kept && kept.firstId !== firstId) {
      element.scrollTop = element.scrollHeight - kept.height + kept.top; // older ones went above
      before.current = null;
    } else if (atEnd.current) {
      element.scrollTop = element.scrollHeight;
    }
  }, [room.messages, room.pending, firstId]);

  return (
    <div className="messages" ref={box} onScroll={onScroll} data-testid="message-list">
      {room.hasOlder && (
        <button
          type="button"
          className="older"
          data-testid="load-older"
          onClick={loadOlder}
          disabled={loadingOlder}
        >
          {loadingOlder ? 'carregando…' : 'carregar mensagens anteriores'}
        </button>
      )}
      {room.messages.map((message) => (
        <MessageItem
          key={message.id}
          message={message}
          room={room}
          mine={message.user.id === room.me?.id}
        />
      ))}
      {room.pending.map((pending) => (
        <PendingItem key={pending.clientId} pending={pending} />
      ))}
    </div>
  );
}

interface MessageItemProps {
  message: ChatMessage;
  room: ChatRoom;
  mine: boolean;
}

function MessageItem({ message, room, mine }: MessageItemProps) {
  return (
    <article
      className={mine ? 'message mine' : 'message'}
      data-testid="message"
      data-message-id={message.id}
    >
      <header>
        <strong data-testid="message-author">{message.user.username}</strong>{' '}
        <time dateTime={message.created_at}>{time(message.created_at)}</time>
        {message.edited_at && !message.deleted && <span className="edited"> (editada)</span>}
      </header>
      {message.deleted ? (
        <p className="deleted">mensagem apagada</p>
      ) : (
        <p data-testid="message-text">{message.message}</p>
      )}
      {!message.deleted && <Reactions message={message} room={room} />}
    </article>
  );
}

function Reactions({ message, room }: { message: ChatMessage; room: ChatRoom }) {
  const reactions = message.reactions ?? [];
  const liked = reactions.some((reaction) => reaction.emoji === '👍' && reaction.me);
  return (
    <div className="reactions">
      {reactions.map((reaction) => (
        <button
          type="button"
          key={reaction.emoji}
          className={reaction.me ? 'reaction me' : 'reaction'}
          onClick={() => (reaction.me ? room.unreact : room.react)(message.id, reaction.emoji)}
        >
          {reaction.emoji} {reaction.count}
        </button>
      ))}
      {!liked && (
        <button
          type="button"
          className="reaction add"
          title="curtir"
          onClick={() => room.react(message.id, '👍')}
        >
          +👍
        </button>
      )}
    </div>
  );
}

const PENDING_TEXTS = { queued: 'na fila', sent: 'enviando…', failed: 'não enviada' } as const;

function PendingItem({ pending }: { pending: PendingMessage }) {
  return (
    <article
      className={`message mine pending ${pending.state}`}
      data-testid="pending-message"
      data-state={pending.state}
    >
      <p>{pending.text}</p>
      <p className="pending-state">
        {PENDING_TEXTS[pending.state]}
        {pending.error && `: ${explainError(pending.error)}`}
      </p>
    </article>
  );
}
