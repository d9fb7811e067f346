/** Amounts travel as exact decimal strings; they are rounded only here, for display. */
export function money(amount: string | null | undefined, currency: string): string {
  if (amount === null || amount === undefined) return "—";
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(Number(amount));
}

export function quantity(amount: string | null | undefined): string {
  if (amount === null || amount === undefined) return "—";
  return new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 }).format(Number(amount));
}

export function date(value: string): string {
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }).format(new Date(value));
}

/** Adds decimal strings exactly enough for totals (to 10 decimal places, as the API keeps them). */
export function sum(values: string[]): string {
  const SCALE = 10n ** 10n;
  const total = values.reduce((acc, value) => {
    const [whole, fraction = ""] = value.replace("-", "").split(".");
    const units = BigInt(whole) * SCALE + BigInt((fraction + "0000000000").slice(0, 10));
    return acc + (value.startsWith("-") ? -units : units);
  }, 0n);
  const sign = total < 0n ? "-" : "";
  const absolute = total < 0n ? -total : total;
  return `${sign}${absolute / SCALE}.${(absolute % SCALE).toString().padStart(10, "0")}`;
}

/** A × B for decimal strings, to 10 decimal places (as the API keeps amounts), rounded half up. */
export function times(a: string, b: string): string {
  const scaled = (value: string): [bigint, number] => {
    const [whole, fraction = ""] = value.trim().split(".");
    return [BigInt(whole + fraction), fraction.length];
  };
  const [x, xs] = scaled(a);
  const [y, ys] = scaled(b);
  let product = x * y;
  let places = xs + ys;
  if (places > 10) {
    const cut = 10n ** BigInt(places - 10);
    product = (product + cut / 2n) / cut;
    places = 10;
  }
  const digits = product.toString().padStart(places + 1, "0");
  return places ? `${digits.slice(0, -places)}.${digits.slice(-places)}` : digits;
}
