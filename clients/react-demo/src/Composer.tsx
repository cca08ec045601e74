import { useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import type { ChatRoom } from '@crm-chat/react';

// The protocol: repeat is_typing every ~2 s while typing (observers drop it after 5 s).
const TYPING_REPEAT_MS = 2000;
const TYPING_IDLE_MS = 3000;

/** Tells the room when this user types, and when they stopped (idle, sent, or left). */
function useTypingSignal(setTyping: (isTyping: boolean) => void) {
  const lastSent = useRef(0);
  const idleTimer = useRef<number | undefined>(undefined);

  const stop = () => {
    window.clearTimeout(idleTimer.current);
    if (lastSent.current) setTyping(false);
    lastSent.current = 0;
  };
  const typed = () => {
    if (Date.now() - lastSent.current > TYPING_REPEAT_MS) {
      setTyping(true);
      lastSent.current = Date.now();
    }
    window.clearTimeout(idleTimer.current);
    idleTimer.current = window.setTimeout(stop, TYPING_IDLE_MS);
  };
  useEffect(() => () => window.clearTimeout(idleTimer.current), []);
  return { typed, stop };
}

export function Composer({ room }: { room: ChatRoom }) {
  const [text, setText] = useState('');
  const typing = useTypingSignal(room.setTyping);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!text.trim()) return;
    room.send(text);
    setText('');
    typing.stop();
  };

  return (
    <form className="composer" onSubmit={submit}>
      <input
        data-testid="composer-input"
        placeholder="Escreva uma mensagem…"
        value={text}
        maxLength={4000}
        onChange={(event) => {
          setText(event.target.value);
          typing.typed();
        }}
        onBlur={typing.stop}
      />
      <button type="submit" data-testid="composer-send" disabled={!text.trim()}>
        Enviar
      </button>
    </form>
  );
}
