import type { MouseEvent, ReactNode } from 'react';
import { navigate } from './router';

/** An <a> that changes the route without reloading (and still opens in a new tab). */
export function Link({ to, children, ...rest }: { to: string; children: ReactNode; [attribute: string]: unknown }) {
  const follow = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={to} onClick={follow} {...rest}>
      {children}
    </a>
  );
}
