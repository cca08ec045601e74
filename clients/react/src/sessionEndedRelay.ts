import type { ChatApiError } from '@crm-chat/client';

/**
 * Carries ChatClient's `onSessionEnded` to the provider: the client is made before any React
 * tree exists, so it cannot call into one directly.
 */
export interface SessionEndedRelay {
  notify(reason: ChatApiError): void;
  subscribe(listener: (reason: ChatApiError) => void): () => void;
}

export function sessionEndedRelay(): SessionEndedRelay {
  const listeners = new Set<(reason: ChatApiError) => void>();
  return {
    notify: (reason) => listeners.forEach((listener) => listener(reason)),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
