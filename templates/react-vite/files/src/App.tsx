import { Route, Routes } from "react-router-dom";
import { Callback, RequireAuth } from "./auth";
import { Layout } from "./components/Layout";
import { Welcome } from "./components/Welcome";
import { EmptyState } from "./components/ui";
import { Home } from "./screens/Home";

/** The routes: `/` is public, everything else needs a signed-in user (RequireAuth). */
export function App({ title }: { title: string }) {
  return (
    <Layout title={title} nav={[{ to: "/home", label: "Home" }]}>
      <Routes>
        <Route path="/" element={<Welcome title={title} home="/home" blurb="Sign in with your ecosystem account to continue." />} />
        <Route path="/callback" element={<Callback />} />
        <Route path="/home" element={<RequireAuth><Home /></RequireAuth>} />
        <Route path="*" element={<EmptyState title="Page not found">Nothing lives at this address.</EmptyState>} />
      </Routes>
    </Layout>
  );
}
