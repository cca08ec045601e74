import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChatProvider, useRooms } from '../src/index.js';
import { apiError, FakeClient, room } from './fakes.js';

afterEach(cleanup);

function RoomList({ refreshEveryMs }: { refreshEveryMs?: number }) {
  const { rooms, loading, error, refresh } = useRooms({ refreshEveryMs });
  return (
    <div>
      <p data-testid="loading">{String(loading)}</p>
      <p data-testid="error">{error ? (error as { code?: string }).code : ''}</p>
      {rooms.map((r) => (
        <p key={r.id} data-testid="room">
          {r.name}:{r.unread_count}
        </p>
      ))}
      <button onClick={() => void refresh()}>refresh</button>
    </div>
  );
}

function renderList(client: FakeClient, refreshEveryMs?: number) {
  return render(
    <ChatProvider client={client.asClient()}>
      <RoomList refreshEveryMs={refreshEveryMs} />
    </ChatProvider>,
  );
}

const texts = (id: string) => screen.queryAllByTestId(id).map((e) => e.textContent);

describe('useRooms', () => {
  it('loads the rooms on mount and again on refresh', async () => {
    const client = new FakeClient();
    let unread = 2;
    client.roomsAnswer = async () => [room('a', 'Vendas', unread), room('b', 'Gerência')];
    renderList(client);
    expect(texts('loading')).toEqual(['true']);
    await waitFor(() => expect(texts('room')).toEqual(['Vendas:2', 'Gerência:0']));
    expect(texts('loading')).toEqual(['false']);

    unread = 5;
    await act(async () => screen.getByText('refresh').click());
    await waitFor(() => expect(texts('room')).toEqual(['Vendas:5', 'Gerência:0']));
  });

  it('reports an error and keeps the rooms it had', async () => {
    const client = new FakeClient();
    client.roomsAnswer = async () => [room('a', 'Vendas')];
    renderList(client);
    await waitFor(() => expect(texts('room')).toEqual(['Vendas:0']));

    client.roomsAnswer = async () => Promise.reject(apiError(503, 'service_unavailable'));
    await act(async () => screen.getByText('refresh').click());
    await waitFor(() => expect(texts('error')).toEqual(['service_unavailable']));
    expect(texts('room')).toEqual(['Vendas:0']);
    expect(texts('loading')).toEqual(['false']);
  });

  it('ignores an older answer that arrives after a newer one', async () => {
    const client = new FakeClient();
    const answers: ((rooms: ReturnType<typeof room>[]) => void)[] = [];
    client.roomsAnswer = () => new Promise((resolve) => answers.push(resolve));
    renderList(client);
    await act(async () => screen.getByText('refresh').click());
    expect(answers).toHaveLength(2);
    await act(async () => answers[1]([room('n', 'nova')]));
    await act(async () => answers[0]([room('v', 'velha')]));
    expect(texts('room')).toEqual(['nova:0']);
  });

  it('fetches again every refreshEveryMs while mounted', async () => {
    vi.useFakeTimers();
    try {
      const client = new FakeClient();
      let calls = 0;
      client.roomsAnswer = async () => [room('a', 'Vendas', calls++)];
      const { unmount } = renderList(client, 1000);
      await act(async () => vi.advanceTimersByTimeAsync(2500));
      expect(calls).toBe(3);
      expect(texts('room')).toEqual(['Vendas:2']);
      unmount();
      await act(async () => vi.advanceTimersByTimeAsync(5000));
      expect(calls).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
