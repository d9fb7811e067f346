import React from "react";
import ReactDOM from "react-dom/client";
import { BrowserRouter } from "react-router-dom";
import "./index.css";
import { App } from "./App";
import { loadConfig } from "./config";
import { makeUserManager, SignInProvider } from "./auth";
import { makeApi } from "./api/client";
import { ApiContext } from "./api/context";
import { FullPageMessage } from "./components/ui";

const root = ReactDOM.createRoot(document.getElementById("root")!);

loadConfig().then(
  (config) => {
    document.title = config.title;
    const users = makeUserManager(config);
    root.render(
      <React.StrictMode>
        <SignInProvider config={config} users={users}>
          <ApiContext.Provider value={makeApi(config.api, users)}>
            <BrowserRouter>
              <App title={config.title} />
            </BrowserRouter>
          </ApiContext.Provider>
        </SignInProvider>
      </React.StrictMode>,
    );
  },
  (error: Error) => {
    root.render(
      <FullPageMessage title="The app could not start">
        <p className="text-slate-600">{error.message}</p>
      </FullPageMessage>,
    );
  },
);
