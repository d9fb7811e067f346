"""Building a service as its template declares (`run.local` in template.yaml): the build commands
run in the service folder, once per change of the declared inputs (a hash of their contents), with
their output in the service's build log."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Live
from ecoctl.runtimes.local.logs import tail_lines
from ecoctl.support.atomic import write_atomic

BUILD_STAMP = ".ecoctl-build"


class ALL_FILES:
    """Every file of a service folder, as `inputs` (build caches and bytecode aside)."""

    inputs = ("**/*",)
    build = ()


def inputs_digest(folder: Path, run) -> str:
    digest = hashlib.sha256(repr(run.build).encode())
    files = sorted({path for pattern in run.inputs for path in folder.glob(pattern) if path.is_file()
                    and not {"__pycache__", ".venv", "build"} & set(path.relative_to(folder).parts)})
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class Builds:
    """Mixed into LocalRuntime: build a service declared by its template, when its inputs changed."""

    def build_service(self, name: str, run) -> bool:
        """Run the template's build commands for NAME when needed; True when it built."""
        from ecoctl.runtimes.local.accounts import copy_readable_tree

        source, folder = self.service_dir(name), self.service_run_dir(name)
        output = self.build_dir(name)
        stamp = output.parent / f".{name}{BUILD_STAMP}"  # root's: not in the folder the build writes
        digest = inputs_digest(source, run)
        copied = folder != source  # the programs' user cannot reach the ecosystem: it runs a copy
        if copied:
            digest += "/" + inputs_digest(source, ALL_FILES)  # any edit refreshes the copy
        if stamp.exists() and stamp.read_text() == digest and folder.is_dir() and output.is_dir():
            return False  # a running service keeps its folder: it is replaced only to build anew
        if copied:
            folder.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            copy_readable_tree(source, folder)
        builder = self.builder
        builder.owned_folder(output)
        workdir = builder.workspace(folder, self.build_tree(name))
        log = self.supervisor.logs_dir / f"{name}-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.progress(f"building {name} ({len(run.build)} step(s), log: {log})")
        for argv in run.build:
            returncode = self._build_step(name, list(argv), workdir, log)
            if returncode != 0:
                last = tail_lines(log, 1)
                raise EcoctlError(f"building {name} failed at `{' '.join(argv[:3])}` "
                                  f"({last[0].strip() if last else 'no output'}): see {log}")
        write_atomic(stamp, digest, durable=False)
        return True

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


def build_note(run) -> str:
    """What builds a service its template runs, for `status`."""
    return f"build: `{' '.join(run.build[0][:2])}` (its template's run.local)" if run.build else "no build step"
