import { useEffect, useState } from 'react';

/** '/chat/' when Django serves the build, '/' under `npm run dev`. */
const BASE = import.meta.env.BASE_URL;

export type Route = { page: 'rooms' } | { page: 'room'; roomId: string };

export function routeOf(pathname: string): Route {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : '';
  const room = /^rooms\/([^/]+)\/?$/.exec(rest);
  return room ? { page: 'room', roomId: decodeURIComponent(room[1]) } : { page: 'rooms' };
}

export function roomPath(roomId: string): string {
  return `${BASE}rooms/${encodeURIComponent(roomId)}`;
}

export const roomsPath = BASE;

const NAVIGATED = 'app:navigated';

export function navigate(path: string): void {
  window.history.pushState(null, '', path);
  window.dispatchEvent(new Event(NAVIGATED));
}

/** The route of the address bar: links push it, the back button pops it. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(routeOf(window.location.pathname));
    window.addEventListener('popstate', update);
    window.addEventListener(NAVIGATED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(NAVIGATED, update);
    };
  }, []);
  return route;
}
