import { Navigate } from "react-router-dom";
import { useAuth } from "react-oidc-context";
import { Spinner } from "./ui";

/** The start page: signed-in visitors go straight to HOME; others are offered to sign in. */
export function Welcome({ title, home, blurb }: { title: string; home: string; blurb: string }) {
  const auth = useAuth();
  if (auth.isLoading) return <Spinner />;
  if (auth.isAuthenticated) return <Navigate to={home} replace />;
  return (
    <div className="mx-auto max-w-xl py-16 text-center">
      <h1 className="text-3xl font-semibold tracking-tight text-slate-900">{title}</h1>
      <p className="mt-4 text-slate-600">{blurb}</p>
      <button type="button" className="btn-primary mt-8" onClick={() => void auth.signinRedirect({ state: home })}>
        Sign in to continue
      </button>
    </div>
  );
}
