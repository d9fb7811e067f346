"""Where the local PostgreSQL keeps its data, and the server that runs on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

SHARED_DATA = Path("/var/lib/ecoctl/data")


class PostgresData:
    """Mixed into LocalRuntime: the PostgreSQL data directory and server of this ecosystem."""

    def _shared_data_dir(self) -> Path:
        digest = hashlib.sha256(str(self.workspace.root).encode()).hexdigest()[:8]
        return SHARED_DATA / f"{self.ecosystem.name}-{digest}" / "postgres"

    def _own_data_dir(self) -> Path:
        return self.workspace.state_dir / "postgres" / "data"

    def postgres_data_dir(self) -> tuple[Path, str]:
        """Where the server's data lives, and why when it is not under the ecosystem's folder.

        As root the server runs as the `ecoctl` user, which may not be able to traverse to the
        ecosystem (e.g. under /root, mode 0700); its data then lives under /var/lib/ecoctl/data/
        instead (the user's folders are left as they are). Existing data is always used where it is.
        """
        own, shared = self._own_data_dir(), self._shared_data_dir()
        for folder in (own, shared):
            if (folder / "PG_VERSION").exists():
                return folder, "" if folder == own else self._shared_reason()
        if self._server_user_reaches(self.workspace.state_dir):
            return own, ""
        return shared, self._shared_reason()

    def _shared_reason(self) -> str:
        return (f"data in {self._shared_data_dir()}: the `{self.account.name}` user cannot reach "
                f"{self.workspace.state_dir}")

    @property
    def account(self):
        """Who every program runs as (see `accounts`)."""
        account = getattr(self, "_account", None)
        if account is None:
            from ecoctl.runtimes.local.accounts import for_ecosystem

            account = self._account = for_ecosystem(self.ecosystem)
        return account

    def program_account(self, name: str):
        """Who the program NAME (a core component or a service) runs as: its own user when we are
        root (see `program_users`), else the `account`'s."""
        accounts = self.__dict__.setdefault("_program_accounts", {})
        if name not in accounts:
            from ecoctl.runtimes.local.accounts import for_program

            accounts[name] = for_program(self.ecosystem, self.workspace.root, name, self.account)
        return accounts[name]

    def program_users_id(self) -> str:
        """This ecosystem's part of its programs' user names (see `program_users`)."""
        from ecoctl.runtimes.local.program_users import ecosystem_id

        return ecosystem_id(self.workspace.root)

    def _server_user_reaches(self, folder: Path) -> bool:
        if self.account.name is None:
            return True
        folder.mkdir(parents=True, exist_ok=True)
        return self.account.succeeds(["test", "-x", str(folder)])

    def program_home(self) -> Path:
        """Where the programs' user keeps its files: Redis's and Prometheus's (config, data), the
        JWKS services read and, when that user cannot reach the ecosystem's folder, a copy of each
        service and its venv. `.ecoctl/run/` when the `ecoctl` user reaches `.ecoctl/` (or we are
        not root), else /var/lib/ecoctl/data/<ecosystem>-<digest>/run/ beside PostgreSQL's data,
        for the reason PostgreSQL's data goes there (the ecosystem's folder is left as it is)."""
        home = getattr(self, "_program_home", None)
        if home is None:
            if self._server_user_reaches(self.workspace.state_dir):
                home = self.workspace.state_dir / "run"
            else:
                home = self._shared_data_dir().parent / "run"
            self._program_home = home
        return home

    def home_is_shared(self) -> bool:
        return self.workspace.state_dir not in self.program_home().parents

    def prepare_home(self) -> Path:
        """The home folder, created: root's, traversable (0711), never listable by others."""
        home = self.program_home()
        if self.home_is_shared():
            SHARED_DATA.mkdir(parents=True, exist_ok=True, mode=0o755)
            home.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        home.mkdir(parents=True, exist_ok=True, mode=0o711)
        return home

    def postgres_server(self):
        from ecoctl.runtimes.local.postgres import SERVICE_USER, PostgresServer

        data_dir, _ = self.postgres_data_dir()
        return PostgresServer(data_dir, self.ecosystem.core.postgres.port,
                              self.workspace.secret("POSTGRES_PASSWORD"),
                              user=self._postgres_account().name or SERVICE_USER)

    def _postgres_account(self):
        from ecoctl import components

        return self.program_account(components.POSTGRES.name)

    def _prepare_postgres(self):
        from ecoctl.runtimes.local.postgres import running_as_root

        self._postgres_account().ids()  # its user exists before initdb runs as it
        server = self.postgres_server()
        self._postgres_account().claim_tree(server.data_dir)  # kept by an older ecoctl's one shared user
        if not server.initialized():
            self.progress(f"initializing PostgreSQL data in {server.data_dir}")
            parent = server.data_dir.parent
            if running_as_root() and str(parent).startswith(str(SHARED_DATA)):
                SHARED_DATA.mkdir(parents=True, exist_ok=True, mode=0o755)
                parent.mkdir(parents=True, exist_ok=True, mode=0o711)
            else:
                parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            server.initdb()
        return server

    # -- programs -------------------------------------------------------------------------
