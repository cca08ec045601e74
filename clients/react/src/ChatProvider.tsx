import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
} from 'react';
import type { ReactNode } from 'react';
import type { ChatApiError, ChatClient, User } from '@crm-chat/client';
import type { SessionEndedRelay } from './sessionEndedRelay.js';

export type SessionStatus = 'checking' | 'signed-out' | 'signed-in';

export interface Session {
  status: SessionStatus;
  user: User | null;
  /** Why the last login failed or the session ended; null after a successful login. */
  error: ChatApiError | Error | null;
  login(username: string, password: string): Promise<User>;
  logout(): void;
}

interface ChatContextValue {
  client: ChatClient;
  session: Session;
}

const ChatContext = createContext<ChatContextValue | null>(null);

export interface ChatProviderProps {
  client: ChatClient;
  /** @deprecated Not needed: the provider listens to `client.on('sessionEnded')` itself. A relay
   * given to the client's `onSessionEnded` still works (the two are told apart). */
  sessionEnded?: SessionEndedRelay;
  children?: ReactNode;
}

interface SessionState {
  status: SessionStatus;
  user: User | null;
  error: ChatApiError | Error | null;
}

function initialSession(client: ChatClient): SessionState {
  return { status: client.isLoggedIn() ? 'checking' : 'signed-out', user: null, error: null };
}

export function ChatProvider({ client, sessionEnded, children }: ChatProviderProps) {
  const [state, setState] = useState<SessionState>(() => initialSession(client));

  // Stored tokens (a reload) are only a claim: /me says whose they are, or that they are dead.
  useEffect(() => {
    if (!client.isLoggedIn()) return;
    let current = true;
    setState({ status: 'checking', user: null, error: null });
    client.me().then(
      (user) => current && setState({ status: 'signed-in', user, error: null }),
      (error: Error) => current && setState({ status: 'signed-out', user: null, error }),
    );
    return () => {
      current = false;
    };
  }, [client]);

  // The reason last handled: an app still passing a relay hears each end twice (its
  // onSessionEnded and the client's event, with the same reason).
  const ended = useRef<ChatApiError | null>(null);
  useEffect(() => {
    const end = (reason: ChatApiError) => {
      if (ended.current === reason) return;
      ended.current = reason;
      setState({ status: 'signed-out', user: null, error: reason });
    };
    const offClient = client.on('sessionEnded', end);
    const offRelay = sessionEnded?.subscribe(end);
    return () => {
      offClient();
      offRelay?.();
    };
  }, [client, sessionEnded]);

  const login = useCallback(
    async (username: string, password: string) => {
      try {
        const user = await client.login(username, password);
        setState({ status: 'signed-in', user, error: null });
        return user;
      } catch (error) {
        setState({ status: 'signed-out', user: null, error: error as Error });
        throw error;
      }
    },
    [client],
  );

  const logout = useCallback(() => {
    client.logout();
    setState({ status: 'signed-out', user: null, error: null });
  }, [client]);

  const value = useMemo(
    () => ({ client, session: { ...state, login, logout } }),
    [client, state, login, logout],
  );
  return <ChatContext.Provider value={value}>{children}</ChatContext.Provider>;
}

function useChatContext(hook: string): ChatContextValue {
  const value = useContext(ChatContext);
  if (!value) throw new Error(`${hook}() must be called inside <ChatProvider client={…}>`);
  return value;
}

export function useChatClient(): ChatClient {
  return useChatContext('useChatClient').client;
}

/** Who is signed in, and login/logout; shared by every component under the provider. */
export function useSession(): Session {
  return useChatContext('useSession').session;
}
