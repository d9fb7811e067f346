/** RFC 9457 problem details, turned into one sentence a person can act on. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  errors?: { loc?: (string | number)[]; msg?: string; detail?: string; pointer?: string }[];
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;

  constructor(status: number, problem: Problem | null, fallback: string) {
    super(describe(status, problem, fallback));
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

const STATUS_WORDS: Record<number, string> = {
  401: "Your session has expired: sign in again.",
  403: "You are not allowed to do that.",
  404: "That item does not exist (it may have been deleted).",
  409: "That conflicts with the current state: reload and try again.",
  429: "Too many requests: wait a moment and try again.",
  503: "The service is unavailable right now: try again shortly.",
};

export function describe(status: number, problem: Problem | null, fallback: string): string {
  const parts: string[] = [];
  const head = problem?.detail || problem?.title || STATUS_WORDS[status] || fallback;
  const sentence = head.charAt(0).toUpperCase() + head.slice(1);
  parts.push(sentence.endsWith(".") || sentence.endsWith(":") ? sentence : `${sentence}.`);
  for (const error of problem?.errors ?? []) {
    // the field named last: `quantity`, not `body.buy.quantity`
    const where = error.pointer ?? String((error.loc ?? []).filter((part) => part !== "body").slice(-1)[0] ?? "");
    const what = error.detail ?? error.msg;
    if (what) parts.push(where ? `${where}: ${what}` : what);
  }
  return parts.join(" ");
}
