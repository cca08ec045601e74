import type { ChatApiError } from '@crm-chat/client';

/**
 * Carries ChatClient's `onSessionEnded` to the provider.
 *
 * @deprecated `ChatProvider` listens to `client.on('sessionEnded')` itself: drop the relay from
 * `onSessionEnded` and from the provider's `sessionEnded`. It still works meanwhile.
 */
export interface SessionEndedRelay {
  notify(reason: ChatApiError): void;
  subscribe(listener: (reason: ChatApiError) => void): () => void;
}

/** @deprecated See SessionEndedRelay. */
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
