"""Building a service as its template declares (`run.local` in template.yaml): the build commands
run in the service folder, once per change of the declared inputs (a hash of their contents), with
their output in the service's build log."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Live
from ecoctl.runtimes.local.logs import tail_lines
from ecoctl.support.atomic import write_atomic

BUILD_STAMP = ".ecoctl-build"
NOT_INPUTS = frozenset({"__pycache__", ".venv", "build", "node_modules", "dist", "generated"})
"""Folders a build makes or fills (installed packages, its output): never what decides to build."""


class ALL_FILES:
    """Every file of a service folder, as `inputs` (build caches and bytecode aside)."""

    inputs = ("**/*",)
    build = ()


def inputs_digest(folder: Path, run) -> str:
    digest = hashlib.sha256(repr(run.build).encode())
    files = sorted({path for pattern in run.inputs for path in folder.glob(pattern) if path.is_file()
                    and not NOT_INPUTS & set(path.relative_to(folder).parts)})
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


SHARED = ".shared"
"""build/.shared/<key>/ (no service has that name): one output per distinct key, for templates whose `run.local.shared` says what
their build depends on (see template_run.SHARED_BY); each service's build/<name> links to its own."""
PLACEHOLDER = Path("/ecoctl-build-dir")


def cached_build_key(run, steps, folder: Path) -> str:
    """The key of a build kept in the host's build cache (`shared: node-build`): its steps as they
    would run for any service (PLACEHOLDER for the output), its declared inputs' contents, and the
    version of Node.js that builds it. Nothing of an ecosystem is in it: the web app reads its
    settings at run time, so one build serves every ecosystem with the same sources."""
    node = shutil.which("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout if node else ""
    same = type("Inputs", (), {"inputs": run.inputs, "build": steps})
    return hashlib.sha256(f"node-build\n{version.strip()}\n{inputs_digest(folder, same)}".encode()).hexdigest()[:32]


def shared_key(shared: str, steps, folder: Path) -> str:
    """The key of a shared build: what it depends on (by `shared`), and its steps as they would run
    for any service (with PLACEHOLDER for the build folder)."""
    from ecoctl.runtimes.local.environments import python_dependencies

    digest = hashlib.sha256(f"{shared}\n{steps!r}\n".encode())
    if shared == "python-dependencies":
        digest.update(python_dependencies(folder))
    return digest.hexdigest()[:32]


class Builds:
    """Mixed into LocalRuntime: build a service declared by its template, when its inputs changed."""

    def skipped_services(self) -> dict[str, str]:
        """The services this host cannot build whose template is `optional` (the web app without
        Node.js): name -> why, and what to install. They are not started; `up` still converges."""
        found = {}
        for name, spec in self.ecosystem.services.items():
            run = self.local_run(name) if spec.pattern != "external" else None
            if run is not None and run.optional and (missing := missing_requirement(name, run)):
                found[name] = f"{missing}, then run `ecoctl up` again"
        return found

    def build_service(self, name: str, run) -> bool:
        """Run the template's build commands for NAME when needed; True when it built (or, for a
        shared build, when it links to another one): the service then restarts."""
        from ecoctl.runtimes.local.build_account import EVERY_PROGRAM

        source, folder = self.service_dir(name), self.service_run_dir(name)
        link = self.build_dir(name)
        if run.shared == "node-build":  # built once per key on this host, in the build cache
            key = cached_build_key(run, _steps_in(run.build, link, PLACEHOLDER), source)
            output, digest, reader = self.builder.build_cache() / key, f"cache {key}", EVERY_PROGRAM
        elif run.shared:  # built once per key, in the programs' user's folder for it
            key = shared_key(run.shared, _steps_in(run.build, link, PLACEHOLDER), source)
            output, digest, reader = link.parent / SHARED / key, f"{SHARED} {key}", EVERY_PROGRAM
        else:
            output, digest, reader = link, inputs_digest(source, run), self.program_account(name)
        stamp = link.parent / f".{name}{BUILD_STAMP}"  # root's: not in the folder the build writes
        copied = folder != source  # the programs' user cannot reach the ecosystem: it runs a copy
        if copied:
            digest += "/" + inputs_digest(source, ALL_FILES)  # any edit refreshes the copy
        if (stamp.exists() and stamp.read_text() == digest and folder.is_dir() and output.is_dir()
                and (output == link or os.path.realpath(link) == os.path.realpath(output))
                and self.builder.is_current(output) and (not copied or self.copy_is_current(name))):
            self.builder.share(output, reader)  # its user may have been made again since
            return False  # a running service keeps its folder: it is replaced only to build anew
        if copied:  # in a folder only we and the service's user may enter: its path is predictable
            self.copy_service(name)
        if missing := missing_requirement(name, run):
            raise EcoctlError(f"{missing}, then run `ecoctl up` again")
        if output == link:
            self._run_build(name, run.build, output, folder, reader)
        elif run.shared == "node-build":
            self._cached_build(name, run, key, output, folder)
            _link(link, output)
        else:
            done = output.parent / f".{key}{BUILD_STAMP}"
            if done.exists() and output.is_dir() and self.builder.is_current(output):
                self.progress(f"{name} uses the build of the services with the same "
                              f"{run.shared.replace('-', ' ')} ({output})")
            else:
                self._forget_unused_shared(link.parent)
                self._run_build(name, _steps_in(run.build, link, output), output, folder, reader)
                write_atomic(done, key, durable=False)
            _link(link, output)
        write_atomic(stamp, digest, durable=False)
        return True

    def _cached_build(self, name: str, run, key: str, output: Path, folder: Path) -> None:
        """OUTPUT (the cache's entry KEY) built, unless an earlier build of the same key (by any
        ecosystem of this host) made it: built beside it and renamed into place, so two ecoctls
        building the same key at once both end with one whole output. Every program may read it
        (a web app's static files, public by nature)."""
        from ecoctl.runtimes.local.build_account import EVERY_PROGRAM

        done = output.parent / f".{key}{BUILD_STAMP}"
        if done.exists() and output.is_dir() and self.builder.is_current(output):
            self.progress(f"{name} uses the cached build of the same sources ({output})")
            return
        staging = output.with_name(f".{key}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        self._run_build(name, _steps_in(run.build, self.build_dir(name), staging), staging, folder, EVERY_PROGRAM)
        if output.is_dir() and not self.builder.is_current(output):  # an older ecoctl's, unreadable
            shutil.rmtree(output)
        try:
            os.rename(staging, output)
        except OSError:  # another one built it meanwhile: only whole outputs are ever renamed there
            shutil.rmtree(staging, ignore_errors=True)
        write_atomic(done, key, durable=False)

    def _run_build(self, name: str, steps, output: Path, folder: Path, reader) -> None:
        """Run STEPS as the builder into OUTPUT, which READER (the service's account, or
        EVERY_PROGRAM for a shared build) may read but not change."""
        builder = self.builder
        builder.owned_folder(output, reader)
        workdir = builder.workspace(folder, self.build_tree(name), ignore=tuple(NOT_INPUTS))
        log = self.supervisor.logs_dir / f"{name}-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.progress(f"building {name} ({len(steps)} step(s), log: {log})")
        for argv in steps:
            returncode = self._build_step(name, list(argv), workdir, log)
            if returncode != 0:
                last = tail_lines(log, 1)
                raise EcoctlError(f"building {name} failed at `{' '.join(argv[:3])}` "
                                  f"({last[0].strip() if last else 'no output'}): see {log}")
        builder.settle(output)

    @staticmethod
    def _forget_unused_shared(builds: Path) -> None:
        """Remove the shared builds no service's build/<name> links to any more (a service whose
        dependencies changed keeps its old one until it links to its new one)."""
        shared = builds / SHARED
        if not shared.is_dir():
            return
        used = {os.path.realpath(path) for path in builds.iterdir() if path.is_symlink()}
        for path in shared.iterdir():
            if path.is_dir() and not path.is_symlink() and os.path.realpath(path) not in used:
                shutil.rmtree(path)
                (shared / f".{path.name}{BUILD_STAMP}").unlink(missing_ok=True)

    def _build_step(self, name: str, argv: list[str], folder: Path, log: Path) -> int:
        """Run one build command as the programs' user; each line it prints goes to LOG and, as a
        live progress line, to whoever watches. Its exit code."""
        builder = self.builder
        try:
            program = builder.program(argv[0])
        except FileNotFoundError:
            raise EcoctlError(f"building {name} needs `{argv[0]}`, which is not installed: install it "
                              "(see the template's README) and run `ecoctl up` again") from None
        with open(log, "ab") as handle:
            handle.write(f"$ {' '.join(argv)}\n".encode())
            handle.flush()
            process = subprocess.Popen([program, *argv[1:]], cwd=folder, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=builder.environment([program]),
                                       **builder.popen_options())
            with process:
                for line in process.stdout:
                    handle.write(line)
                    handle.flush()
                    text = line.decode(errors="replace").strip()
                    if text:
                        self.progress(Live(f"building {name}: {text}"))
            return process.returncode


def missing_requirement(name: str, run) -> str | None:
    """Why NAME cannot be built here (a program its template `requires` is not on PATH), with how
    to install it; None when nothing is missing."""
    for program, hint in getattr(run, "requires", ()):
        if shutil.which(program) is None:
            return f"building {name} needs `{program}`, which is not on PATH: {hint}"
    return None


def build_note(run) -> str:
    """What builds a service its template runs, for `status`."""
    return f"build: `{' '.join(run.build[0][:2])}` (its template's run.local)" if run.build else "no build step"


def _steps_in(steps, build_dir: Path, other: Path) -> tuple[tuple[str, ...], ...]:
    """STEPS (rendered with the service's BUILD_DIR) as they run with their output in OTHER."""
    return tuple(tuple(arg.replace(str(build_dir), str(other)) for arg in step) for step in steps)


def _link(link: Path, target: Path) -> None:
    """LINK (root's, in root's folder) points to TARGET; a folder an older build left there goes."""
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    staging = link.with_name(f".{link.name}.link")
    staging.unlink(missing_ok=True)
    os.symlink(target, staging)
    os.replace(staging, link)
