import createClient, { type Middleware } from "openapi-fetch";
import type { UserManager } from "oidc-client-ts";
import type { paths } from "../../generated/schema";
import { ApiError, type Problem } from "./problem";

const BODILESS = new Set(["GET", "HEAD", "DELETE"]);

export type Api = ReturnType<typeof createClient<paths>>;

/** The typed client of the API this app calls (types generated from api/openapi.json by
 * openapi-typescript at build time), sending the signed-in user's access token. An expired token is
 * renewed first; a 401 renews it and retries a request without a body once. Failures become ApiError (RFC 9457 problems). */
export function makeApi(baseUrl: string, users: UserManager): Api {
  const client = createClient<paths>({ baseUrl });
  const auth: Middleware = {
    async onRequest({ request }) {
      let user = await users.getUser();
      if (user && user.expires_in !== undefined && user.expires_in < 5 && user.refresh_token) {
        user = await users.signinSilent().catch(() => user);
      }
      if (user?.access_token) request.headers.set("Authorization", `Bearer ${user.access_token}`);
      return request;
    },
    async onResponse({ request, response }) {
      // a request without a body is sent again once with a renewed token (a body is read once)
      if (response.status === 401 && BODILESS.has(request.method) && !request.headers.has("X-Retried")) {
        const renewed = await users.signinSilent().catch(() => null);
        if (renewed?.access_token) {
          const again = new Request(request, { headers: new Headers(request.headers) });
          again.headers.set("Authorization", `Bearer ${renewed.access_token}`);
          again.headers.set("X-Retried", "1");
          return fetch(again);
        }
      }
      return response;
    },
  };
  client.use(auth);
  return client;
}

/** The data of an openapi-fetch result, or an ApiError with the problem's message. */
export async function unwrap<T>(result: Promise<{ data?: T; error?: unknown; response: Response }>, what: string): Promise<T> {
  // openapi-fetch has read the body already: an error's is `error` (a problem, when it is JSON)
  const { data, error, response } = await result;
  if (!response.ok) {
    const problem = error && typeof error === "object" ? (error as Problem) : null;
    throw new ApiError(response.status, problem, `Could not ${what} (HTTP ${response.status}).`);
  }
  return data as T;
}
