"""As whom, where and with what environment a service's build and install steps run.

Run as root, ecoctl hands every build step (a template's `run.local.build`, `uv pip install` of a
Python service, whose setup.py or build backend runs code) to the builder, the shared unprivileged
user `ecoctl` (or `runtime_user`): in a copy of the service's folder that user owns, with a minimal
environment (no root's HOME or variables: only the package-index, proxy and certificate settings
builds need) and that user's caches, shared by every service and ecosystem of that user on the
host (uv's wheels, Go's module and build caches, npm's), so a second Go service compiles only
its own packages. What a build makes for a service (its venv, its build folder) is the builder's,
in a folder of the service's user's group (0750): the service reads and runs it, and cannot change
it, nor reach another service's; a shared build (`run.local.shared`: the dependencies several
services have in common) is 0755. Run as anyone else, builds run as that user in its own
environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ecoctl.errors import EcoctlError

SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
PASSED_ON = (
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT",
    "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NATIVE_TLS", "UV_PYTHON_DOWNLOADS", "UV_OFFLINE",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
    "GOPROXY", "GOFLAGS", "GONOSUMDB", "GONOPROXY", "GOPRIVATE", "GOSUMDB", "GOTOOLCHAIN", "GOINSECURE",
    "ECOCTL_INSTALLER", "TZ",
)
"""What a build may need of the caller's environment: where packages come from and how to trust them."""
SHARED_ROOT = Path("/var/lib/ecoctl")
CACHES = {"UV_CACHE_DIR": "uv", "GOCACHE": "go-build", "GOMODCACHE": "go-mod", "npm_config_cache": "npm"}
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
LAYOUT = ".ecoctl-readable"
"""In an output folder made for readers other than the builder (files 0644/0755 under a gate): one
made before (files 0600, for the builder alone) has none, and is built again."""
EVERY_PROGRAM = "every program"
"""The reader of a shared build's output (see `BuildAccount.share`)."""
QUIET_NPM = {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}


def _readable_inside(folder: Path, owner: int) -> None:
    """Every file of OWNER's in FOLDER readable as if made under umask 022 (uv links files from its
    cache, made 0600 by an older ecoctl under umask 077): FOLDER itself stays the gate (see
    `share`). Links, and files of anyone else (a hard link a build made), are left as they are."""
    import stat

    for path in folder.rglob("*"):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != owner:
            continue
        mode = stat.S_IMODE(info.st_mode)
        wanted = mode | ((mode & 0o500) >> 3) | ((mode & 0o500) >> 6)
        if wanted != mode:
            os.chmod(path, wanted)


def uv_environment() -> dict[str, str]:
    """uv reads its own settings, not pip's: the pip index settings of the environment are passed on,
    and uv trusts the system's certificate store as pip, git and curl do here (its default is its
    own bundled roots, which fail behind a TLS-inspecting proxy whose CA the system trusts)."""
    env = dict(os.environ)
    for pip_name, uv_name in (("PIP_INDEX_URL", "UV_INDEX_URL"), ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"),
                              ("PIP_FIND_LINKS", "UV_FIND_LINKS"), ("PIP_CERT", "SSL_CERT_FILE")):
        if env.get(pip_name) and not env.get(uv_name):
            env[uv_name] = env[pip_name]
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.setdefault("UV_NATIVE_TLS", "1")
    # Node.js (npm) trusts its own bundled roots too: the system's store is added, as for uv
    if SYSTEM_CA.is_file():
        env.setdefault("NODE_EXTRA_CA_CERTS", str(SYSTEM_CA))
    return env


class BuildAccount:
    """The build side of an `Account`: the user builds run as (None: the current user)."""

    def __init__(self, account, shared_root: Path = SHARED_ROOT):
        self.account = account
        self.shared_root = shared_root

    @property
    def switches(self) -> bool:
        return self.account.name is not None

    def popen_options(self) -> dict:
        """subprocess options that run a step as the programs' user, with no other group."""
        if not self.switches:
            return {}
        uid, gid = self.account.ids()  # what it makes is readable: its output folder is the gate
        return {"user": uid, "group": gid, "extra_groups": [], "umask": 0o022}

    def cache_dir(self) -> Path:
        """The programs' user's build caches (0700, theirs), shared by its services and ecosystems."""
        caches = self.shared_root / "cache"
        caches.mkdir(parents=True, exist_ok=True, mode=0o755)
        return self.account.private_dir(caches / self.account.name)

    def build_cache(self) -> Path:
        """Where builds shared by every ecosystem of this host are kept (`run.local.shared:
        node-build`), one folder per key: the builder's, readable by every program, when builds
        switch user, else the caller's (~/.cache/ecoctl/builds). Nothing removes old entries:
        delete the folder to reclaim the space."""
        if self.switches:  # beside the builder's private caches: the programs read what is in it
            folder = self.shared_root / "builds"
            folder.mkdir(parents=True, exist_ok=True, mode=0o755)
            os.chown(folder, *self.account.ids(), follow_symlinks=False)
            os.chmod(folder, 0o755, follow_symlinks=False)
            return folder
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ecoctl" / "builds"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def environment(self, programs: list[str] = ()) -> dict[str, str]:
        """The environment of a build step running PROGRAMS (absolute paths: their folders go
        first on PATH)."""
        caller = uv_environment()
        if not self.switches:
            return caller
        home = self.cache_dir()
        folders = [str(Path(program).parent) for program in programs if os.path.isabs(program)]
        path = list(dict.fromkeys([*folders, *SYSTEM_PATH]))
        env = {**QUIET_NPM, **{key: caller[key] for key in PASSED_ON if caller.get(key)}}
        env.update({"PATH": os.pathsep.join(path), "HOME": str(home), "LANG": "C.UTF-8",
                    "XDG_CACHE_HOME": str(home), "GOPATH": str(home / "go")})
        env.update({key: str(home / folder) for key, folder in CACHES.items()})
        return env

    def program(self, name: str) -> str:
        """The absolute path of the program NAME (on the caller's PATH) as the programs' user can
        run it: itself, or a copy of it that ecoctl keeps for that user (ecoctl's own uv may live
        under a folder only root can enter)."""
        found = shutil.which(name) if not os.path.isabs(name) else name
        if found is None or not os.path.exists(found):
            raise FileNotFoundError(name)
        found = os.path.realpath(found)  # a link's own folder may be closed to that user; Go finds its root from it
        if not self.switches or self.account.succeeds(["test", "-x", found]):
            return found
        return str(self._tool_copy(Path(found)))

    def _tool_copy(self, binary: Path) -> Path:
        data = binary.read_bytes()
        tools = self.shared_root / "tools"
        tools.mkdir(parents=True, exist_ok=True, mode=0o755)
        os.chmod(tools, 0o755)
        copy = tools / f"{binary.name}-{hashlib.sha256(data).hexdigest()[:16]}"
        if not copy.is_file() or copy.is_symlink():
            from ecoctl.support.atomic import replace_file

            replace_file(copy, data, 0o755)
        if not self.account.succeeds(["test", "-x", str(copy)]):
            raise EcoctlError(f"the `{self.account.name}` user cannot run {binary} nor a copy of it in "
                              f"{tools}: install {binary.name} where every user can run it")
        return copy

    def workspace(self, source: Path, target: Path, ignore=("__pycache__", ".venv", "build")) -> Path:
        """TARGET: a copy of SOURCE owned by the programs' user (files 0600, or 0700 when
        executable; folders 0700) that its build may write in; what SOURCE no longer has is
        removed. SOURCE itself when nothing is switched."""
        if not self.switches:
            return source
        self.account.copy_private_tree(source, target, skip=tuple(ignore), follow_links=False, keep_executable=True)
        return target

    def owned_folder(self, folder: Path, reader=None) -> Path:
        """FOLDER (created) owned by the builder, for READER to read (see `share`); one made by an
        older ecoctl (as root, or for the builder alone) is replaced: its contents are rebuilt,
        never trusted."""
        if self.switches and folder.exists() and not folder.is_symlink() and not self.is_current(folder):
            shutil.rmtree(folder)
        if folder.is_symlink():
            folder.unlink()
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not self.switches:
            folder.mkdir(exist_ok=True)
            return folder
        self.account.private_dir(folder)
        (folder / LAYOUT).touch()
        self.share(folder, reader)
        return folder

    def settle(self, folder: Path) -> None:
        """After a build or install into FOLDER: every file in it readable through its gate."""
        if self.switches:
            _readable_inside(folder, self.account.ids()[0])

    def is_current(self, folder: Path) -> bool:
        """Whether FOLDER was made by `owned_folder` as it is now (the builder's, readable)."""
        if not self.switches:
            return True
        try:
            return os.lstat(folder).st_uid == self.account.ids()[0] and (folder / LAYOUT).is_file()
        except FileNotFoundError:
            return False

    def share(self, folder: Path, reader) -> None:
        """FOLDER (the builder's) readable by READER alone: the builder's and READER's group, 0750.
        READER EVERY_PROGRAM (a shared build): 0755; None or the builder itself: 0700."""
        if not self.switches:
            return
        if reader == EVERY_PROGRAM:
            os.chmod(folder, 0o755, follow_symlinks=False)
        elif reader is None or reader.name == self.account.name:
            os.chmod(folder, 0o700, follow_symlinks=False)
        else:
            os.chown(folder, -1, reader.ids()[1], follow_symlinks=False)
            os.chmod(folder, 0o750, follow_symlinks=False)
