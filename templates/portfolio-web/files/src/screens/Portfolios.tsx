import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { unwrap } from "../api/client";
import { useApi } from "../api/context";
import type { components } from "../../generated/schema";
import { Card, EmptyState, ErrorBanner, Field, Spinner, inputClass } from "../components/ui";
import { useAction } from "../components/useAction";
import { date, money, sum } from "./format";

type Portfolio = components["schemas"]["Portfolio"];
type Page = components["schemas"]["Page_Portfolio_"];
const PAGE_SIZE = 10;

/** The signed-in user's portfolios, a page at a time, with their total value per currency. */
export function Portfolios() {
  const api = useApi();
  const [params, setParams] = useSearchParams();
  const offset = Math.max(0, Number(params.get("offset") ?? 0) || 0);
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(() => {
    setError(null);
    unwrap(api.GET("/portfolios", { params: { query: { limit: PAGE_SIZE, offset } } }), "load your portfolios")
      .then(setPage, setError);
  }, [api, offset]);
  useEffect(load, [load]);

  const goTo = (next: number) => setParams(next > 0 ? { offset: String(next) } : {});

  return (
    <div className="flex flex-col gap-6">
      <div className="flex flex-wrap items-end justify-between gap-4">
        <div>
          <h1 className="text-2xl font-semibold tracking-tight">Portfolios</h1>
          <p className="mt-1 text-sm text-slate-600">Each portfolio keeps its holdings in one currency.</p>
        </div>
      </div>
      <CreatePortfolio onCreated={() => (offset === 0 ? load() : goTo(0))} />
      {error ? <ErrorBanner error={error} onRetry={load} /> : null}
      {!page && !error ? <Spinner label="Loading your portfolios" /> : null}
      {page && page.total === 0 ? (
        <EmptyState title="No portfolios yet">Create your first portfolio above to start tracking holdings.</EmptyState>
      ) : null}
      {page && page.items.length > 0 ? (
        <>
          <Totals portfolios={page.items} />
          <Card title={`Your portfolios (${page.total})`}>
            <ul className="divide-y divide-slate-100" aria-label="Portfolios">
              {page.items.map((portfolio) => (
                <PortfolioRow key={portfolio.id} portfolio={portfolio} onChanged={load} />
              ))}
            </ul>
            <Pager offset={offset} total={page.total} onPage={goTo} />
          </Card>
        </>
      ) : null}
    </div>
  );
}

function CreatePortfolio({ onCreated }: { onCreated: () => void }) {
  const api = useApi();
  const [name, setName] = useState("");
  const [currency, setCurrency] = useState("EUR");
  const { busy, error, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const done = await run(() => unwrap(api.POST("/portfolios", {
      body: { name: name.trim(), currency: currency.trim().toUpperCase() } }), "create the portfolio"));
    if (done) {
      setName("");
      onCreated();
    }
  };

  return (
    <Card title="New portfolio">
      <form onSubmit={submit} className="flex flex-col gap-4">
        <div className="grid gap-4 sm:grid-cols-[1fr_8rem_auto] sm:items-end">
          <Field label="Name" id="new-name">
            <input id="new-name" className={inputClass} value={name} onChange={(e) => setName(e.target.value)}
              placeholder="Retirement" required maxLength={200} />
          </Field>
          <Field label="Currency" id="new-currency">
            <input id="new-currency" className={inputClass} value={currency} onChange={(e) => setCurrency(e.target.value)}
              placeholder="EUR" required pattern="[A-Za-z]{3}" title="a three-letter ISO 4217 code, e.g. EUR" />
          </Field>
          <button type="submit" className="btn-primary" disabled={busy}>{busy ? "Creating…" : "Create portfolio"}</button>
        </div>
        {error ? <ErrorBanner error={error} /> : null}
      </form>
    </Card>
  );
}

function PortfolioRow({ portfolio, onChanged }: { portfolio: Portfolio; onChanged: () => void }) {
  const api = useApi();
  const [mode, setMode] = useState<"view" | "rename" | "delete">("view");
  const [name, setName] = useState(portfolio.name);
  const { busy, error, run } = useAction();
  const path = { params: { path: { portfolio_id: portfolio.id } } };

  const act = async (work: () => Promise<unknown>) => {
    if (await run(work)) {
      setMode("view");
      onChanged();
    }
  };

  return (
    <li className="flex flex-col gap-3 py-3">
      {mode === "rename" ? (
        <form className="flex flex-wrap items-end gap-3"
          onSubmit={(e) => { e.preventDefault(); void act(() => unwrap(api.PATCH("/portfolios/{portfolio_id}", { ...path, body: { name: name.trim() } }), "rename the portfolio")); }}>
          <Field label={`New name for ${portfolio.name}`} id={`rename-${portfolio.id}`}>
            <input id={`rename-${portfolio.id}`} className={inputClass} value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} autoFocus />
          </Field>
          <button type="submit" className="btn-primary" disabled={busy}>Save</button>
          <button type="button" className="btn-secondary" onClick={() => { setMode("view"); setName(portfolio.name); }}>Cancel</button>
        </form>
      ) : (
        <div className="flex flex-wrap items-center justify-between gap-3">
          <div>
            <Link to={`/portfolios/${portfolio.id}`} className="font-medium text-indigo-700 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500">
              {portfolio.name}
            </Link>
            <p className="text-sm text-slate-600">{portfolio.currency} · created {date(portfolio.created_at)}</p>
          </div>
          {mode === "delete" ? (
            <div className="flex items-center gap-2" role="group" aria-label={`Delete ${portfolio.name}?`}>
              <span className="text-sm text-slate-700">Delete it and its history?</span>
              <button type="button" className="btn-danger" disabled={busy}
                onClick={() => void act(() => unwrap(api.DELETE("/portfolios/{portfolio_id}", path), "delete the portfolio"))}>
                Delete
              </button>
              <button type="button" className="btn-secondary" onClick={() => setMode("view")}>Keep</button>
            </div>
          ) : (
            <div className="flex gap-2">
              <button type="button" className="btn-secondary" onClick={() => setMode("rename")} aria-label={`Rename ${portfolio.name}`}>Rename</button>
              <button type="button" className="btn-secondary" onClick={() => setMode("delete")} aria-label={`Delete ${portfolio.name}`}>Delete</button>
            </div>
          )}
        </div>
      )}
      {error ? <ErrorBanner error={error} /> : null}
    </li>
  );
}

/** The total value of the listed portfolios, per currency (each portfolio's own valuation). */
function Totals({ portfolios }: { portfolios: Portfolio[] }) {
  const api = useApi();
  const [totals, setTotals] = useState<[string, string][] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ids = portfolios.map((p) => p.id).join(",");

  useEffect(() => {
    let live = true;
    setTotals(null);
    setError(null);
    Promise.all(portfolios.map((p) => unwrap(api.GET("/portfolios/{portfolio_id}/valuation",
      { params: { path: { portfolio_id: p.id } } }), "value the portfolios")))
      .then((valuations) => {
        const byCurrency = new Map<string, string[]>();
        for (const v of valuations) byCurrency.set(v.currency, [...(byCurrency.get(v.currency) ?? []), v.totals.total_value]);
        if (live) setTotals([...byCurrency].map(([currency, values]) => [currency, sum(values)]));
      }, (caught) => live && setError(caught));
    return () => { live = false; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, ids]);

  return (
    <Card title="Total value by currency">
      {error ? <ErrorBanner error={error} /> : !totals ? <Spinner label="Valuing" /> : (
        <dl className="grid gap-4 sm:grid-cols-3" data-testid="totals">
          {totals.map(([currency, total]) => (
            <div key={currency} className="rounded-lg bg-slate-50 px-4 py-3">
              <dt className="text-xs font-medium uppercase tracking-wide text-slate-600">{currency}</dt>
              <dd className="mt-1 text-xl font-semibold tabular-nums">{money(total, currency)}</dd>
            </div>
          ))}
        </dl>
      )}
    </Card>
  );
}

function Pager({ offset, total, onPage }: { offset: number; total: number; onPage: (offset: number) => void }) {
  if (total <= PAGE_SIZE) return null;
  const last = Math.min(offset + PAGE_SIZE, total);
  return (
    <nav aria-label="Pages" className="mt-4 flex items-center justify-between border-t border-slate-100 pt-4 text-sm">
      <span className="text-slate-600">{offset + 1}–{last} of {total}</span>
      <div className="flex gap-2">
        <button type="button" className="btn-secondary" disabled={offset === 0} onClick={() => onPage(Math.max(0, offset - PAGE_SIZE))}>Previous</button>
        <button type="button" className="btn-secondary" disabled={last >= total} onClick={() => onPage(offset + PAGE_SIZE)}>Next</button>
      </div>
    </nav>
  );
}
