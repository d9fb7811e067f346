/** What serve.py tells the app at run time (`/config.json`), so one build runs in every ecosystem. */
export interface AppConfig {
  /** The OIDC issuer (the local development sign-in, or Authentik). */
  issuer: string;
  /** This web app's public client (authorization code + PKCE, no secret). */
  client_id: string;
  scope: string;
  /** The API this app calls, as a same-origin path serve.py forwards (`/api/portfolio`). */
  api: string;
  /** The app's name, shown in the header. */
  title: string;
}

export async function loadConfig(): Promise<AppConfig> {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`the app's settings could not be loaded (HTTP ${response.status})`);
  return (await response.json()) as AppConfig;
}
