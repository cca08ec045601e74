import WebSocket from 'ws';
import { ChatClient, type ChatConnection, type ConnectionSnapshot } from '../src/index.js';
import { DEMO_PASSWORD } from './server.js';

export async function loggedIn(baseUrl: string, username: string): Promise<ChatClient> {
  const client = new ChatClient({
    baseUrl,
    WebSocket,
  });
  await client.login(username, DEMO_PASSWORD);
  return client;
}

export async function roomId(client: ChatClient, name: string): Promise<string> {
  const room = (await client.rooms()).find((r) => r.name === name);
  if (!room) throw new Error(`no room ${name}`);
  return room.id;
}

/** Resolves when `predicate` holds for the connection's snapshot (checked on every change). */
export function until(
  connection: ChatConnection,
  predicate: (snapshot: ConnectionSnapshot) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<ConnectionSnapshot> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const snapshot = connection.getSnapshot();
      if (!predicate(snapshot)) return false;
      clearTimeout(timer);
      unsubscribe();
      resolve(snapshot);
      return true;
    };
    const timer = setTimeout(() => {
      unsubscribe();
      const s = connection.getSnapshot();
      reject(
        new Error(
          `timed out waiting for ${what}: status=${s.status} messages=${s.messages.length} ` +
            `pending=${s.pending.length} error=${JSON.stringify(s.error)}`,
        ),
      );
    }, timeoutMs);
    const unsubscribe = connection.subscribe(() => void check());
    check();
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function texts(snapshot: ConnectionSnapshot): string[] {
  return snapshot.messages.map((m) => m.message);
}

export function postMessage(client: ChatClient, room: string, text: string) {
  return client.request<{ id: number }>('POST', `/api/chat/rooms/${room}/messages/`, {
    message: text,
  });
}
