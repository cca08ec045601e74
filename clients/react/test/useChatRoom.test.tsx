import { StrictMode } from 'react';
import { act, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from '@testing-library/react';
import { ChatProvider, useChatRoom } from '../src/index.js';
import { FakeClient, message } from './fakes.js';

afterEach(cleanup);

function Room({ roomId }: { roomId: string }) {
  const room = useChatRoom(roomId);
  return (
    <div>
      <p data-testid="status">{room.status}</p>
      <p data-testid="error">{room.error?.code ?? ''}</p>
      <ul>
        {room.messages.map((m) => (
          <li key={m.id} data-testid="message">
            {m.message}
          </li>
        ))}
      </ul>
      <button onClick={() => room.send('oi')}>send</button>
      <button onClick={() => room.markRead(3)}>read</button>
      <button onClick={() => room.retryNow()}>retry</button>
      <button
        onClick={() => {
          room.setTyping(true);
          room.react(3, '👍');
          room.unreact(3, '👍');
          room.edit(3, 'novo');
          room.remove(3);
          void room.loadOlder(20);
        }}
      >
        everything else
      </button>
    </div>
  );
}

function renderRoom(client: FakeClient, roomId: string, strict = false) {
  const tree = (id: string) => {
    const app = (
      <ChatProvider client={client.asClient()}>
        <Room roomId={id} />
      </ChatProvider>
    );
    return strict ? <StrictMode>{app}</StrictMode> : app;
  };
  const result = render(tree(roomId));
  return { ...result, switchTo: (id: string) => result.rerender(tree(id)) };
}

describe('useChatRoom', () => {
  it('connects on mount and renders status changes and messages', () => {
    const client = new FakeClient();
    renderRoom(client, 'r1');
    expect(client.connections.map((c) => c.roomId)).toEqual(['r1']);
    expect(screen.getByTestId('status').textContent).toBe('connecting');

    const connection = client.connections[0];
    act(() => connection.update({ status: 'open', messages: [message(1, 'olá')] }));
    expect(screen.getByTestId('status').textContent).toBe('open');
    expect(screen.getAllByTestId('message').map((li) => li.textContent)).toEqual(['olá']);

    act(() => connection.update({ messages: [message(1, 'olá'), message(2, 'tudo bem?')] }));
    expect(screen.getAllByTestId('message')).toHaveLength(2);

    act(() =>
      connection.update({
        status: 'closed',
        error: { code: 'not_a_member', detail: '', closeCode: 4403, final: true },
      }),
    );
    expect(screen.getByTestId('status').textContent).toBe('closed');
    expect(screen.getByTestId('error').textContent).toBe('not_a_member');
  });

  it('closes the connection on unmount and stops listening', () => {
    const client = new FakeClient();
    const { unmount } = renderRoom(client, 'r1');
    const connection = client.connections[0];
    expect(connection.listenerCount).toBe(1);
    unmount();
    expect(connection.closed).toBe(true);
    expect(connection.listenerCount).toBe(0);
  });

  it('closes the old room and connects the new one when roomId changes', () => {
    const client = new FakeClient();
    const { switchTo } = renderRoom(client, 'r1');
    act(() => client.connections[0].update({ status: 'open', messages: [message(1, 'de r1')] }));

    switchTo('r2');
    expect(client.connections.map((c) => [c.roomId, c.closed])).toEqual([
      ['r1', true],
      ['r2', false],
    ]);
    // The new room starts empty: nothing of r1 stays on screen.
    expect(screen.getByTestId('status').textContent).toBe('connecting');
    expect(screen.queryAllByTestId('message')).toHaveLength(0);
    act(() => client.connections[1].update({ status: 'open', messages: [message(5, 'de r2')] }));
    expect(screen.getByTestId('message').textContent).toBe('de r2');
  });

  it('leaves exactly one open connection under StrictMode', () => {
    const client = new FakeClient();
    const { unmount } = renderRoom(client, 'r1', true);
    expect(client.open()).toHaveLength(1);
    act(() => client.open()[0].update({ status: 'open' }));
    expect(screen.getByTestId('status').textContent).toBe('open');
    unmount();
    expect(client.open()).toHaveLength(0);
  });

  it('sends, marks read and retries through the current connection', () => {
    const client = new FakeClient();
    renderRoom(client, 'r1');
    const connection = client.connections[0];
    act(() => screen.getByText('send').click());
    act(() => screen.getByText('read').click());
    act(() => screen.getByText('retry').click());
    expect(connection.sent).toEqual(['oi']);
    expect(connection.calls).toEqual([['markRead', 3], ['retryNow']]);
    act(() => screen.getByText('everything else').click());
    expect(connection.calls.slice(2)).toEqual([
      ['setTyping', true],
      ['react', 3, '👍'],
      ['unreact', 3, '👍'],
      ['edit', 3, 'novo'],
      ['remove', 3],
      ['loadOlder', 20],
    ]);
  });
});
