import type { ReactNode } from "react";
import { Link, NavLink } from "react-router-dom";
import { useAuth } from "react-oidc-context";
import { signOut } from "../auth";

export interface NavItem {
  to: string;
  label: string;
}

/** The page frame: the app's name, its navigation, who is signed in, and sign out. */
export function Layout({ title, nav, children }: { title: string; nav: NavItem[]; children: ReactNode }) {
  const auth = useAuth();
  const profile = auth.user?.profile;
  const who = profile?.name || profile?.preferred_username || profile?.email || profile?.sub;
  return (
    <div className="min-h-screen">
      <a href="#content" className="sr-only focus:not-sr-only focus:absolute focus:left-4 focus:top-4 focus:z-10 focus:rounded focus:bg-white focus:px-3 focus:py-2 focus:shadow">
        Skip to content
      </a>
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-5xl items-center justify-between gap-6 px-6 py-3">
          <div className="flex items-center gap-8">
            <Link to="/" className="text-lg font-semibold tracking-tight text-slate-900 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500">
              {title}
            </Link>
            {auth.isAuthenticated && (
              <nav aria-label="Main" className="flex gap-1">
                {nav.map((item) => (
                  <NavLink key={item.to} to={item.to}
                    className={({ isActive }) => `rounded-md px-3 py-1.5 text-sm font-medium focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 ${isActive ? "bg-indigo-50 text-indigo-700" : "text-slate-700 hover:bg-slate-100"}`}>
                    {item.label}
                  </NavLink>
                ))}
              </nav>
            )}
          </div>
          {auth.isAuthenticated ? (
            <div className="flex items-center gap-3">
              <span className="text-sm text-slate-700" data-testid="signed-in-as">Signed in as <strong>{who}</strong></span>
              <button type="button" className="btn-secondary" onClick={() => void signOut(auth)}>Sign out</button>
            </div>
          ) : (
            <button type="button" className="btn-primary" onClick={() => void auth.signinRedirect({ state: "/" })}>Sign in</button>
          )}
        </div>
      </header>
      <main id="content" className="mx-auto max-w-5xl px-6 py-8">{children}</main>
    </div>
  );
}
