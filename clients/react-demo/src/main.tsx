import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ChatClient, sessionTokenStore } from '@crm-chat/client';
import { ChatProvider } from '@crm-chat/react';
import { App } from './App';
import './styles.css';

/** `npm run dev` talks to the backend across origins (real CORS); the build, to its own. */
function backendUrl(): string {
  const configured = import.meta.env.VITE_CHAT_BACKEND as string | undefined;
  if (configured) return configured;
  return import.meta.env.DEV ? 'http://127.0.0.1:8000' : window.location.origin;
}

// sessionStorage: a reload keeps the login, another tab or a closed one does not.
const client = new ChatClient({
  baseUrl: backendUrl(),
  tokenStore: sessionTokenStore('crm-chat-demo.tokens'),
}); // the provider listens to client.on('sessionEnded'): a dead refresh token signs the UI out

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ChatProvider client={client}>
      <App />
    </ChatProvider>
  </StrictMode>,
);
