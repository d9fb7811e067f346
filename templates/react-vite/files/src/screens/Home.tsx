import { useCallback, useEffect, useState } from "react";
import { useAuth } from "react-oidc-context";
import { unwrap } from "../api/client";
import { useApi } from "../api/context";
import { Card, ErrorBanner, Spinner } from "../components/ui";

/** A starting point: who is signed in, and whether the API this app calls answers. */
export function Home() {
  const auth = useAuth();
  const api = useApi();
  const [health, setHealth] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(() => {
    setError(null);
    setHealth(null);
    unwrap(api.GET("/healthz"), "reach the API").then((body) => setHealth(body.status), setError);
  }, [api]);
  useEffect(load, [load]);

  return (
    <div className="flex flex-col gap-6">
      <h1 className="text-2xl font-semibold tracking-tight">Welcome, {auth.user?.profile.name ?? auth.user?.profile.sub}</h1>
      <Card title="API">
        {error ? <ErrorBanner error={error} onRetry={load} /> : health ? <p>The API answers: <strong>{health}</strong></p> : <Spinner />}
      </Card>
    </div>
  );
}
