import type { MouseEvent, ReactNode } from 'react';
import { navigate } from './router';

/** An <a> that changes the route without reloading (and still opens in a new tab). */
interface LinkProps {
  to: string;
  children: ReactNode;
  [attribute: string]: unknown; // data-testid and the like
}

export function Link({ to, children, ...rest }: LinkProps) {
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
