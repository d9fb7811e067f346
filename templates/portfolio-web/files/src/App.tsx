import { Route, Routes } from "react-router-dom";
import { Callback, RequireAuth } from "./auth";
import { Layout } from "./components/Layout";
import { Welcome } from "./components/Welcome";
import { EmptyState } from "./components/ui";
import { Portfolios } from "./screens/Portfolios";
import { PortfolioDetail } from "./screens/PortfolioDetail";

/** The routes: `/` is public, everything else needs a signed-in user (RequireAuth). */
export function App({ title }: { title: string }) {
  return (
    <Layout title={title} nav={[{ to: "/portfolios", label: "Portfolios" }]}>
      <Routes>
        <Route path="/" element={<Welcome title={title} home="/portfolios"
          blurb="Track your portfolios, their holdings and what they are worth, in every currency you invest in." />} />
        <Route path="/callback" element={<Callback />} />
        <Route path="/portfolios" element={<RequireAuth><Portfolios /></RequireAuth>} />
        <Route path="/portfolios/:id" element={<RequireAuth><PortfolioDetail /></RequireAuth>} />
        <Route path="*" element={<EmptyState title="Page not found">Nothing lives at this address.</EmptyState>} />
      </Routes>
    </Layout>
  );
}
