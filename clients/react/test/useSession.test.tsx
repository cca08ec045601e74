import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatProvider, sessionEndedRelay, useChatClient, useSession } from '../src/index.js';
import { apiError, FakeClient } from './fakes.js';

afterEach(cleanup);

function Session() {
  const session = useSession();
  return (
    <div>
      <p data-testid="status">{session.status}</p>
      <p data-testid="user">{session.user?.username ?? ''}</p>
      <p data-testid="error">{(session.error as { code?: string } | null)?.code ?? ''}</p>
      <button onClick={() => session.login('joao', 'wrong').catch(() => {})}>bad login</button>
      <button onClick={() => session.login('joao', 'right')}>login</button>
      <button onClick={session.logout}>logout</button>
    </div>
  );
}

const text = (id: string) => screen.getByTestId(id).textContent;

describe('useSession', () => {
  it('logs in, reports a failed login, and logs out', async () => {
    const client = new FakeClient();
    render(
      <ChatProvider client={client.asClient()}>
        <Session />
      </ChatProvider>,
    );
    expect(text('status')).toBe('signed-out');
    await act(async () => screen.getByText('bad login').click());
    expect(text('error')).toBe('invalid_credentials');
    await act(async () => screen.getByText('login').click());
    expect([text('status'), text('user'), text('error')]).toEqual(['signed-in', 'joao', '']);
    act(() => screen.getByText('logout').click());
    expect(text('status')).toBe('signed-out');
    expect(client.loggedIn).toBe(false);
  });

  it('restores a stored session through me(), or drops a dead one', async () => {
    const client = new FakeClient();
    client.loggedIn = true;
    const { unmount } = render(
      <ChatProvider client={client.asClient()}>
        <Session />
      </ChatProvider>,
    );
    expect(text('status')).toBe('checking');
    await waitFor(() => expect(text('status')).toBe('signed-in'));
    expect(text('user')).toBe('maria');
    unmount();

    client.meAnswer = () => Promise.reject(apiError(401, 'token_expired'));
    render(
      <ChatProvider client={client.asClient()}>
        <Session />
      </ChatProvider>,
    );
    await waitFor(() => expect(text('status')).toBe('signed-out'));
    expect(text('error')).toBe('token_expired');
  });

  it("signs out when the client's session ends, with no relay to pass", async () => {
    const client = new FakeClient();
    const { unmount } = render(
      <ChatProvider client={client.asClient()}>
        <Session />
      </ChatProvider>,
    );
    await act(async () => screen.getByText('login').click());
    expect(text('status')).toBe('signed-in');
    act(() => client.endSession(apiError(401, 'token_invalid')));
    expect([text('status'), text('error')]).toEqual(['signed-out', 'token_invalid']);
    unmount();
    expect(client.sessionEndedListeners.size).toBe(0);
  });

  it('a relay given to onSessionEnded and the provider (deprecated) still works, once', async () => {
    const client = new FakeClient();
    const relay = sessionEndedRelay();
    let renders = 0;
    function Counted() {
      useSession();
      renders++;
      return <Session />;
    }
    render(
      <ChatProvider client={client.asClient()} sessionEnded={relay}>
        <Counted />
      </ChatProvider>,
    );
    await act(async () => screen.getByText('login').click());
    const before = renders;
    const reason = apiError(401, 'token_invalid');
    act(() => {
      relay.notify(reason); // onSessionEnded: relay.notify, as apps wrote it
      client.endSession(reason); // and the client's own event, with the same reason
    });
    expect([text('status'), text('error')]).toEqual(['signed-out', 'token_invalid']);
    act(() => client.endSession(reason));
    expect(renders - before).toBe(1);
  });

  it("signs out when the relay says the client's session ended", async () => {
    const client = new FakeClient();
    const relay = sessionEndedRelay();
    render(
      <ChatProvider client={client.asClient()} sessionEnded={relay}>
        <Session />
      </ChatProvider>,
    );
    await act(async () => screen.getByText('login').click());
    act(() => relay.notify(apiError(401, 'token_invalid')));
    expect([text('status'), text('error')]).toEqual(['signed-out', 'token_invalid']);
  });

  it('says where the provider is missing', () => {
    function Orphan() {
      useChatClient();
      return null;
    }
    // React logs the thrown error (and React 18 re-throws it to window): expected here.
    const quiet = console.error;
    const swallow = (event: ErrorEvent) => event.preventDefault();
    console.error = () => {};
    window.addEventListener('error', swallow);
    try {
      expect(() => render(<Orphan />)).toThrow(/inside <ChatProvider/);
    } finally {
      console.error = quiet;
      window.removeEventListener('error', swallow);
    }
  });
});
