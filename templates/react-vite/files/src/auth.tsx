import { useEffect, useRef, useState, type ReactNode } from "react";
import { AuthProvider, useAuth, type AuthProviderProps } from "react-oidc-context";
import { User, UserManager, WebStorageStateStore } from "oidc-client-ts";
import { Navigate, useLocation } from "react-router-dom";
import type { AppConfig } from "./config";
import { FullPageMessage, Spinner } from "./components/ui";

/** Authorization code + PKCE (S256, oidc-client-ts's only method) with refresh tokens: the access
 * token is renewed before it expires (automaticSilentRenew), and again when the API refuses it. */
export function oidcSettings(config: AppConfig): AuthProviderProps {
  const origin = window.location.origin;
  return {
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: `${origin}/callback`,
    post_logout_redirect_uri: `${origin}/`,
    response_type: "code",
    scope: config.scope,
    automaticSilentRenew: true,
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    // drop ?code=&state= from the address; <Callback> then goes where the visitor was headed
    onSigninCallback: () => window.history.replaceState({}, document.title, window.location.pathname),
  };
}

/** The one UserManager of the app: react-oidc-context's state and the API client share it. */
export function makeUserManager(config: AppConfig): UserManager {
  const { onSigninCallback: _ignored, ...settings } = oidcSettings(config);
  return new UserManager(settings as ConstructorParameters<typeof UserManager>[0]);
}

export function SignInProvider({ config, users, children }: { config: AppConfig; users: UserManager; children: ReactNode }) {
  return <AuthProvider userManager={users} onSigninCallback={oidcSettings(config).onSigninCallback}>{children}</AuthProvider>;
}

/** A protected route: a signed-out visitor is sent to sign in (and comes back here afterwards); an
 * expired session with a refresh token is renewed first. */
export function RequireAuth({ children }: { children: ReactNode }) {
  const auth = useAuth();
  const location = useLocation();
  const [renewing, setRenewing] = useState(false);
  const tried = useRef(false);
  const here = location.pathname + location.search;

  useEffect(() => {
    if (auth.isLoading || auth.isAuthenticated || auth.activeNavigator || auth.error || tried.current) return;
    tried.current = true;
    (async () => {
      const stored = await getStoredUser(auth);
      if (stored?.refresh_token) {
        setRenewing(true);
        try {
          await auth.signinSilent();
          return;
        } catch {
          /* the refresh token is no longer accepted: sign in again */
        } finally {
          setRenewing(false);
        }
      }
      await auth.signinRedirect({ state: here });
    })();
  }, [auth, here]);

  if (auth.error && !auth.isAuthenticated) {
    return (
      <FullPageMessage title="Sign-in failed">
        <p className="text-slate-600">{auth.error.message}</p>
        <button type="button" className="btn-primary mt-4" onClick={() => auth.signinRedirect({ state: here })}>
          Try again
        </button>
      </FullPageMessage>
    );
  }
  if (!auth.isAuthenticated) {
    return (
      <FullPageMessage title={renewing ? "Renewing your session…" : "Sending you to sign in…"}>
        <Spinner />
      </FullPageMessage>
    );
  }
  return <>{children}</>;
}

async function getStoredUser(auth: ReturnType<typeof useAuth>): Promise<User | null> {
  // react-oidc-context drops an expired user from `auth.user`; the store still has its refresh token
  const key = `oidc.user:${auth.settings.authority}:${auth.settings.client_id}`;
  const raw = window.sessionStorage.getItem(key);
  if (!raw) return null;
  try {
    return User.fromStorageString(raw);
  } catch {
    return null;
  }
}

/** `/callback`: react-oidc-context exchanges the code; this shows progress, then goes on. */
export function Callback() {
  const auth = useAuth();
  if (auth.error) {
    return (
      <FullPageMessage title="Sign-in failed">
        <p className="text-slate-600">{auth.error.message}</p>
        <a className="btn-primary mt-4 inline-block" href="/">Back to the start page</a>
      </FullPageMessage>
    );
  }
  if (auth.isAuthenticated) return <Navigate to={returnTo(auth.user)} replace />;
  return (
    <FullPageMessage title="Signing you in…">
      <Spinner />
    </FullPageMessage>
  );
}

/** Where sign-in was started (a same-origin path only). */
function returnTo(user: User | null | undefined): string {
  const state = user?.state;
  return typeof state === "string" && state.startsWith("/") && !state.startsWith("//") ? state : "/";
}

export function signOut(auth: ReturnType<typeof useAuth>) {
  return auth.signoutRedirect({ id_token_hint: auth.user?.id_token });
}
