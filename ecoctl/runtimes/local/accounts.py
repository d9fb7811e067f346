"""Who the local runtime's programs run as, and handing them the files they need.

When ecoctl runs as root, every program (PostgreSQL, Redis, Prometheus, each service) runs as
its own unprivileged system user (see `program_users`), and builds and installs run as the shared
builder `ecoctl`, whose output (venvs, build folders) each service may read but not change; with
`runtime_user` in ecosystem.yaml every program and build runs as that one user instead. Not root,
everything runs as the current user. supervisord itself stays with the user who started it: as
root it needs the privilege to switch each program to its user (setuid happens in the forked
child), and it holds nothing a program can reach: its socket is in a 0700 folder of ours, its
config (0600, every program's environment) is root's alone.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.local import program_users
from ecoctl.runtimes.local.postgres import SERVICE_USER, ensure_service_user, running_as_root

SYSTEM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def for_ecosystem(ecosystem) -> "Account":
    """The account of ECOSYSTEM's programs: `runtime_user` from ecosystem.yaml or `ecoctl` when
    we are root; the current user otherwise (then nothing is switched or chowned)."""
    if not running_as_root():
        return Account(None)
    return Account(getattr(ecosystem, "runtime_user", None) or SERVICE_USER)


def for_program(ecosystem, root, program: str, shared: "Account") -> "Account":
    """The account PROGRAM runs as: its own user (see `program_users`) when we are root and
    ecosystem.yaml names no `runtime_user`; SHARED (that user, or the current one) otherwise."""
    if shared.name is None or getattr(ecosystem, "runtime_user", None):
        return shared
    return ProgramAccount(program_users.ecosystem_id(root), program, root)


class Account:
    """The user the programs run as (`name` None: the current user)."""

    def __init__(self, name: str | None):
        self.name = name

    def ids(self) -> tuple[int, int]:
        """uid and gid of the programs' user."""
        if self.name is None:
            return os.geteuid(), os.getegid()
        user = ensure_service_user(self.name)
        return user.pw_uid, user.pw_gid

    def succeeds(self, argv: list[str]) -> bool:
        """Whether ARGV succeeds when run as the programs' user (e.g. `test -x PATH`). Each answer
        is kept for the life of this Account (one command: the runtime makes one), so ask only
        what does not change while a command runs; one runuser less per repeated question."""
        answers = self.__dict__.setdefault("_answers", {})
        key = tuple(argv)
        if key not in answers:
            answers[key] = self._run_as(argv)
        return answers[key]

    def _run_as(self, argv: list[str]) -> bool:
        if self.name is None:
            return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL).returncode == 0
        self.ids()  # made when missing
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return subprocess.run([runuser, "-u", self.name, "--", *argv], capture_output=True,  # the caller's
                              stdin=subprocess.DEVNULL, env=SYSTEM_ENV).returncode == 0  # PATH may be closed to them

    def private_dir(self, path: Path, mode: int = 0o700) -> Path:
        """A folder owned by the programs' user with MODE (created when missing)."""
        path.mkdir(parents=True, exist_ok=True)
        self.hand_over(path, mode)
        return path

    def hand_over(self, path: Path, mode: int) -> None:
        """chmod (never through a symlink), then chown to the programs' user."""
        os.chmod(path, mode, follow_symlinks=False)
        if self.name is not None:
            os.chown(path, *self.ids(), follow_symlinks=False)

    def claim_tree(self, path: Path) -> None:
        """PATH and everything below it made the programs' user's when PATH is another user's
        (data an older ecoctl kept for its one shared user): links are chowned, never followed."""
        if self.name is None or not path.is_dir() or path.is_symlink():
            return
        uid, gid = self.ids()
        if os.lstat(path).st_uid == uid:
            return
        for folder, folders, files in os.walk(path):
            for entry in [folder, *(os.path.join(folder, name) for name in folders + files)]:
                os.chown(entry, uid, gid, follow_symlinks=False)

    def write_private(self, path: Path, content: str | bytes) -> bool:
        """Write CONTENT to PATH readable by the programs' user only (0600, theirs); True when
        changed. The new file is owned and closed before it replaces the old one (the folder may
        be that user's: nothing they could swap in is ever chowned)."""
        from ecoctl.support.atomic import replace_file

        data = content.encode() if isinstance(content, str) else content
        if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
            self.hand_over(path, 0o600)
            return False
        replace_file(path, data, 0o600, owner=self.ids() if self.name is not None else None)
        return True

    def copy_private_tree(self, source: Path, target: Path, skip: tuple[str, ...] = (), follow_links: bool = True,
                          keep_executable: bool = False) -> None:
        """Copy the files of SOURCE (recursively) to TARGET, each 0600 / 0700 and the programs'
        user's; what SOURCE no longer has is removed. Paths with a part named in SKIP are left out,
        and links too unless FOLLOW_LINKS; with KEEP_EXECUTABLE an executable file is 0700."""
        self.private_dir(target)
        wanted = set()
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if set(relative.parts) & set(skip) or (not follow_links and path.is_symlink()):
                continue
            wanted.add(relative)
            destination = target / relative
            if path.is_dir():
                self.private_dir(destination)
            elif path.is_file():
                self.write_private(destination, path.read_bytes())
                if keep_executable and path.stat().st_mode & stat.S_IXUSR:
                    self.hand_over(destination, 0o700)
        for path in sorted(target.rglob("*"), reverse=True):  # a folder's files before the folder
            if path.relative_to(target) not in wanted:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def service_python(self) -> str:
        """The interpreter services' virtual environments are made from: ecoctl's own, unless
        the programs' user cannot run it (root's pyenv under /root, mode 0700); then the
        system's python3 of the same version."""
        base = getattr(sys, "_base_executable", sys.executable)
        if self.name is None:
            return base
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for candidate in (base, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
            if os.path.exists(candidate) and self.succeeds([candidate, "-c", "import encodings"]):
                return candidate
        raise EcoctlError(f"the `{self.name}` user that runs services cannot run {base}: install "
                          f"python{version} for all users (apt-get install python{version}) or "
                          "run ecoctl from an interpreter outside /root")


    def shared_folder(self, path: Path) -> Path:
        """A folder of ours (created when missing) that only we and the programs' group may enter
        (0750): what is in it is not at a path any other user can reach."""
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        os.chmod(path, 0o750 if self.name is not None else 0o700, follow_symlinks=False)
        if self.name is not None:
            os.chown(path, -1, self.ids()[1], follow_symlinks=False)
        return path


class ProgramAccount(Account):
    """A program's own user (see `program_users`), made when first needed."""

    def __init__(self, ecosystem: str, program: str, root=None):
        super().__init__(program_users.user_name(ecosystem, program))
        self.ecosystem, self.program, self.root = ecosystem, program, root

    def ids(self) -> tuple[int, int]:
        if "_ids" not in self.__dict__:
            user = program_users.ensure(self.ecosystem, self.program, self.root)
            self._ids = user.pw_uid, user.pw_gid
        return self._ids


def copy_readable_tree(source: Path, target: Path, ignore=("__pycache__", ".venv", "*.pyc", "build"),
                       group: int | None = None) -> None:
    """Replace TARGET with a copy of SOURCE that the programs' user can read but not change
    (root's files): a service's code, run from where that user can reach it. Each file keeps its
    mode (a 0600 file stays 0600), without write for group and others. With GROUP (a service's own
    user's group) every file is that group's and TARGET is 0750: only root and that service enter."""
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, symlinks=False, ignore=shutil.ignore_patterns(*ignore))
    for path in [staging, *staging.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode) & 0o755
        os.chmod(path, mode | 0o700 if path.is_dir() else mode | 0o600)
        if group is not None:
            os.chown(path, -1, group, follow_symlinks=False)
    if group is not None:
        os.chmod(staging, 0o750)
    if target.exists():
        shutil.rmtree(target)
    os.rename(staging, target)


# -- folders of ours (supervisord's socket) ------------------------------------------------
def socket_base() -> Path:
    """Where a fallback socket folder is made: $XDG_RUNTIME_DIR when it is ours and private, else
    the temporary directory (the folder's name is random, made 0700 by us: nobody can create it
    first)."""
    import tempfile

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            info = os.lstat(runtime)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077:
                return Path(runtime)
        except OSError:
            pass
    return Path(tempfile.gettempdir())


def verify_private_dir(folder: Path, what: str) -> None:
    """FOLDER is a real directory of ours that nobody else can enter; else one line to fix it."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise EcoctlError(f"{folder} ({what}) is not a directory: refusing to use it; remove it and rerun")
    if info.st_uid != os.geteuid():
        raise EcoctlError(f"{folder} ({what}) is owned by {user_name(info.st_uid)}, not by you: "
                          "refusing to use it; remove it and rerun")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)  # ours: close it before anything is put in it


def user_name(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def private_folder(folder: Path, what: str) -> Path:
    """Create FOLDER 0700 (parents as needed), or verify it is ours; see verify_private_dir."""
    verify_private_dir(folder, what)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    verify_private_dir(folder, what)
    os.chmod(folder, 0o700)
    return folder
