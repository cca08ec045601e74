import { useSession } from '@crm-chat/react';
import { LoginForm } from './LoginForm';
import { RoomList } from './RoomList';
import { RoomView } from './RoomView';
import { useRoute } from './router';

export function App() {
  const session = useSession();
  const route = useRoute();
  return (
    <div className="app">
      <header className="app-header">
        <h1>Chat do CRM</h1>
        {session.user && (
          <p className="session">
            Entrou como <strong data-testid="session-user">{session.user.username}</strong>{' '}
            <button type="button" data-testid="logout" onClick={session.logout}>
              sair
            </button>
          </p>
        )}
      </header>
      <main>{page(session.status, route)}</main>
    </div>
  );
}

function page(status: ReturnType<typeof useSession>['status'], route: ReturnType<typeof useRoute>) {
  if (status === 'checking') return <p data-testid="session-checking">Verificando a sessão…</p>;
  if (status === 'signed-out') return <LoginForm />;
  if (route.page === 'room') return <RoomView key={route.roomId} roomId={route.roomId} />;
  return <RoomList />;
}
