import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Link, useParams } from "react-router-dom";
import { unwrap } from "../api/client";
import { useApi } from "../api/context";
import type { components } from "../../generated/schema";
import { Card, EmptyState, ErrorBanner, Field, Spinner, inputClass } from "../components/ui";
import { useAction } from "../components/useAction";
import { money, quantity, times } from "./format";

type Portfolio = components["schemas"]["Portfolio"];
type Valuation = components["schemas"]["Valuation"];
type HoldingValue = components["schemas"]["HoldingValue"];

/** One portfolio: its valuation (totals in its currency) and its holdings. Adding a holding records
 * its cost as paid in (a deposit) and the purchase (a buy), so the portfolio's cash is unchanged;
 * removing one sells every unit (the proceeds stay as cash). */
export function PortfolioDetail() {
  const api = useApi();
  const id = Number(useParams().id);
  const [portfolio, setPortfolio] = useState<Portfolio | null>(null);
  const [valuation, setValuation] = useState<Valuation | null>(null);
  const [error, setError] = useState<unknown>(null);
  const path = { params: { path: { portfolio_id: id } } };

  const load = useCallback(() => {
    setError(null);
    Promise.all([unwrap(api.GET("/portfolios/{portfolio_id}", path), "load the portfolio"),
                 unwrap(api.GET("/portfolios/{portfolio_id}/valuation", path), "value the portfolio")])
      .then(([found, valued]) => { setPortfolio(found); setValuation(valued); }, setError);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, id]);
  useEffect(load, [load]);

  if (error && !portfolio) {
    return (
      <div className="flex flex-col gap-4">
        <BackLink />
        <ErrorBanner error={error} onRetry={load} />
      </div>
    );
  }
  if (!portfolio || !valuation) return <Spinner label="Loading the portfolio" />;
  const currency = portfolio.currency;
  // a position sold out stays in the valuation (its realized gain counts in the totals), not a holding
  const held = valuation.holdings.filter((holding) => Number(holding.quantity) !== 0);

  return (
    <div className="flex flex-col gap-6">
      <BackLink />
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">{portfolio.name}</h1>
        <p className="mt-1 text-sm text-slate-600">Valued in {currency}</p>
      </div>
      {error ? <ErrorBanner error={error} onRetry={load} /> : null}
      <Card title="Valuation">
        {valuation.totals.unpriced_positions > 0 ? (
          <p className="mb-4 rounded-lg bg-amber-50 px-4 py-2 text-sm text-amber-900" role="note">
            {valuation.totals.unpriced_positions === 1 ? "1 holding has" : `${valuation.totals.unpriced_positions} holdings have`} no
            price yet: the market value and total leave {valuation.totals.unpriced_positions === 1 ? "it" : "them"} out until a price is recorded.
          </p>
        ) : null}
        <dl className="grid gap-4 sm:grid-cols-4" data-testid="valuation">
          <Figure label="Total value" value={money(valuation.totals.total_value, currency)} strong />
          <Figure label="Market value" value={money(valuation.totals.market_value, currency)} />
          <Figure label="Cost basis" value={money(valuation.totals.cost_basis, currency)} />
          <Figure label="Cash" value={money(valuation.totals.cash, currency)} />
          <Figure label="Unrealized gain" value={money(valuation.totals.unrealized_gain, currency)} />
          <Figure label="Realized gain" value={money(valuation.totals.realized_gain, currency)} />
          <Figure label="Dividends" value={money(valuation.totals.dividends, currency)} />
          <Figure label="Unpriced holdings" value={String(valuation.totals.unpriced_positions)} />
        </dl>
      </Card>
      <AddHolding portfolioId={id} onAdded={load} />
      <Card title="Holdings">
        {held.length === 0 ? (
          <EmptyState title="No holdings yet">Add a holding above: its quantity and the price you paid.</EmptyState>
        ) : (
          <div className="overflow-x-auto">
            <table className="w-full text-left text-sm">
              <caption className="sr-only">Holdings of {portfolio.name}</caption>
              <thead className="text-xs uppercase tracking-wide text-slate-600">
                <tr>
                  <th scope="col" className="py-2 pr-4">Symbol</th>
                  <th scope="col" className="py-2 pr-4 text-right">Quantity</th>
                  <th scope="col" className="py-2 pr-4 text-right">Average cost</th>
                  <th scope="col" className="py-2 pr-4 text-right">Price</th>
                  <th scope="col" className="py-2 pr-4 text-right">Market value</th>
                  <th scope="col" className="py-2 pr-4 text-right">Unrealized gain</th>
                  <th scope="col" className="py-2"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody className="divide-y divide-slate-100">
                {held.map((holding) => (
                  <HoldingRow key={holding.symbol} portfolioId={id} holding={holding} currency={currency} onChanged={load} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}

function BackLink() {
  return (
    <Link to="/portfolios" className="text-sm font-medium text-indigo-700 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500">
      ← All portfolios
    </Link>
  );
}

function Figure({ label, value, strong = false }: { label: string; value: string; strong?: boolean }) {
  return (
    <div className="rounded-lg bg-slate-50 px-4 py-3">
      <dt className="text-xs font-medium uppercase tracking-wide text-slate-600">{label}</dt>
      <dd className={`mt-1 tabular-nums ${strong ? "text-xl font-semibold" : "text-base font-medium"}`}>{value}</dd>
    </div>
  );
}

function AddHolding({ portfolioId, onAdded }: { portfolioId: number; onAdded: () => void }) {
  const api = useApi();
  const [symbol, setSymbol] = useState("");
  const [units, setUnits] = useState("");
  const [price, setPrice] = useState("");
  const { busy, error, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const path = { params: { path: { portfolio_id: portfolioId } } };
    const done = await run(async () => {
      await unwrap(api.POST("/portfolios/{portfolio_id}/transactions", {
        ...path, body: { type: "buy", symbol: symbol.trim().toUpperCase(), quantity: units.trim(), price: price.trim(), fee: "0" },
      }), "add the holding");
      const cost = times(units, price);
      if (Number(cost) > 0) {
        await unwrap(api.POST("/portfolios/{portfolio_id}/transactions", { ...path, body: { type: "deposit", amount: cost } }),
          "record the holding's cost as paid in");
      }
    });
    if (done) {
      setSymbol("");
      setUnits("");
      setPrice("");
      onAdded();
    }
  };

  return (
    <Card title="Add a holding">
      <form onSubmit={submit} className="flex flex-col gap-4">
        <div className="grid gap-4 sm:grid-cols-[1fr_1fr_1fr_auto] sm:items-end">
          <Field label="Symbol" id="holding-symbol">
            <input id="holding-symbol" className={inputClass} value={symbol} onChange={(e) => setSymbol(e.target.value)} placeholder="ACME" required />
          </Field>
          <Field label="Quantity" id="holding-quantity">
            <input id="holding-quantity" className={inputClass} value={units} onChange={(e) => setUnits(e.target.value)} inputMode="decimal" placeholder="10" required />
          </Field>
          <Field label="Price paid (each)" id="holding-price">
            <input id="holding-price" className={inputClass} value={price} onChange={(e) => setPrice(e.target.value)} inputMode="decimal" placeholder="12.50" required />
          </Field>
          <button type="submit" className="btn-primary" disabled={busy}>{busy ? "Adding…" : "Add holding"}</button>
        </div>
        {error ? <ErrorBanner error={error} /> : null}
      </form>
    </Card>
  );
}

function HoldingRow({ portfolioId, holding, currency, onChanged }:
  { portfolioId: number; holding: HoldingValue; currency: string; onChanged: () => void }) {
  const api = useApi();
  const [removing, setRemoving] = useState(false);
  const [price, setPrice] = useState(holding.price ?? holding.average_cost ?? "0");
  const { busy, error, run } = useAction();

  const remove = async (event: FormEvent) => {
    event.preventDefault();
    const done = await run(() => unwrap(api.POST("/portfolios/{portfolio_id}/transactions", {
      params: { path: { portfolio_id: portfolioId } },
      body: { type: "sell", symbol: holding.symbol, quantity: holding.quantity, price: price.trim(), fee: "0" },
    }), "remove the holding"));
    if (done) onChanged();
  };

  return (
    <>
      <tr>
        <th scope="row" className="py-2 pr-4 font-medium">{holding.symbol}</th>
        <td className="py-2 pr-4 text-right tabular-nums">{quantity(holding.quantity)}</td>
        <td className="py-2 pr-4 text-right tabular-nums">{money(holding.average_cost, currency)}</td>
        <td className="py-2 pr-4 text-right tabular-nums">{holding.price ? money(holding.price, currency) : <span className="text-slate-600">no price yet</span>}</td>
        <td className="py-2 pr-4 text-right tabular-nums">{money(holding.market_value, currency)}</td>
        <td className="py-2 pr-4 text-right tabular-nums">{money(holding.unrealized_gain, currency)}</td>
        <td className="py-2 text-right">
          <button type="button" className="btn-secondary" onClick={() => setRemoving(!removing)} aria-expanded={removing}
            aria-label={`Remove ${holding.symbol}`}>Remove</button>
        </td>
      </tr>
      {removing && (
        <tr>
          <td colSpan={7} className="bg-slate-50 px-3 py-3">
            <form onSubmit={remove} className="flex flex-wrap items-end gap-3">
              <Field label={`Sell all ${quantity(holding.quantity)} ${holding.symbol} at (each)`} id={`sell-${holding.symbol}`}>
                <input id={`sell-${holding.symbol}`} className={inputClass} value={price} onChange={(e) => setPrice(e.target.value)} inputMode="decimal" required />
              </Field>
              <button type="submit" className="btn-danger" disabled={busy}>{busy ? "Removing…" : `Remove ${holding.symbol}`}</button>
              <button type="button" className="btn-secondary" onClick={() => setRemoving(false)}>Cancel</button>
            </form>
            {error ? <div className="mt-3"><ErrorBanner error={error} /></div> : null}
          </td>
        </tr>
      )}
    </>
  );
}
