"""One system user per program: each service and each core component of an ecosystem runs as its
own unprivileged user, so a compromised program owns nothing but itself (another program's
/proc/<pid>/environ, data, config and code are out of its reach).

The name is `ecoctl-<6 hex of the ecosystem>-<program>` (at most 32 characters, Linux's limit):
the ecosystem's part is its folder's digest, the program's part its name when that is at most 17
safe characters ([a-z0-9_-]), else its first 11 characters, a hyphen and 6 hex of its digest (18
characters: never the same as a verbatim name). The same ecosystem folder and program always give
the same name. ecoctl makes each user when missing (`useradd --system --no-create-home --shell
/usr/sbin/nologin`, with its own group) and marks it as its own in the comment field:
"ecoctl program PROGRAM of ECOSYSTEM" (16 hex digits of the ecosystem's folder). A user of that name without that mark
(made by someone else, or for another program) is refused, never used; only users with the mark
are ever removed (`remove-service`, `down --volumes`). Which folder an ecosystem's users serve is
written to /var/lib/ecoctl/users/<ecosystem> (root's): `vanished` finds the users of ecosystems whose
folder is gone without a `down --volumes`.
"""

from __future__ import annotations

import hashlib
import pwd
import re
import shutil
import subprocess
import time

from pathlib import Path

from ecoctl.errors import EcoctlError

PREFIX = "ecoctl-"
MARK = "ecoctl program"
SAFE = re.compile(r"[a-z0-9_-]{1,17}")
LOCKED = (1, 10)
"""useradd's exit codes when it could not lock /etc/passwd or /etc/group (another useradd held it)."""
LOCK_RETRIES = 40
RECORDS = Path("/var/lib/ecoctl/users")


def _entry(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ecosystem_id(root) -> str:
    """16 hex digits naming an ecosystem's folder (the same digest as its shared data folder's)."""
    return hashlib.sha256(str(root).encode()).hexdigest()[:16]


def user_name(ecosystem: str, program: str) -> str:
    """The system user of PROGRAM in the ecosystem ECOSYSTEM (an `ecosystem_id`)."""
    if not SAFE.fullmatch(program):
        program = re.sub(r"[^a-z0-9_-]", "-", program.lower())[:11] + "-" + \
            hashlib.sha256(program.encode()).hexdigest()[:6]
    return f"{PREFIX}{ecosystem[:6]}-{program}"


def comment(ecosystem: str, program: str) -> str:
    return f"{MARK} {program} of {ecosystem}"


def record(ecosystem: str, root) -> None:
    """Note that ECOSYSTEM's users serve the folder ROOT (see `vanished`)."""
    from ecoctl.support.atomic import write_atomic

    path = RECORDS / ecosystem
    if not path.is_file() or path.read_text() != f"{root}\n":
        RECORDS.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, f"{root}\n", mode=0o600, durable=False)


def vanished() -> list[str]:
    """The ecosystems (`ecosystem_id`s) with users ecoctl made whose recorded folder is gone."""
    gone = []
    for path in sorted(RECORDS.glob("*")) if RECORDS.is_dir() else ():
        folder = Path(path.read_text().strip())
        if not (folder / "ecosystem.yaml").is_file():
            gone.append(path.name)
    return gone


def ensure(ecosystem: str, program: str, root=None) -> pwd.struct_passwd:
    """PROGRAM's user, created when missing; one line when a user of its name is not ecoctl's.
    ROOT: the ecosystem's folder, recorded when a user is made."""
    name, mark = user_name(ecosystem, program), comment(ecosystem, program)
    user = _entry(name)
    if user is None and root is not None:
        record(ecosystem, root)
    for attempt in range(LOCK_RETRIES):
        if user is not None:
            break
        done = subprocess.run(
            [shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", "--user-group", "--comment", mark, name],
            capture_output=True, text=True, stdin=subprocess.DEVNULL)
        user = _entry(name)  # made now, or by another ecoctl at the same moment
        if user is None and done.returncode not in LOCKED:
            break
        time.sleep(0.05 + 0.05 * attempt)  # /etc/passwd was locked by another useradd: again
    if user is None:
        raise EcoctlError(f"could not create the system user {name} that runs {program}: "
                          f"{(done.stderr or done.stdout).strip() or 'useradd failed'}")
    if user.pw_gecos != mark or user.pw_uid == 0:
        raise EcoctlError(f"the user {name} exists but is not the one ecoctl made for {program} (its comment is "
                          f"{user.pw_gecos!r}): remove or rename that user, or set runtime_user in ecosystem.yaml")
    return user


def made_for(ecosystem: str, programs=None) -> list[str]:
    """The users ecoctl made for ECOSYSTEM's programs (those in PROGRAMS only, when given)."""
    found = []
    for user in pwd.getpwall():
        words = user.pw_gecos.split(" ")
        if (user.pw_name.startswith(PREFIX) and len(words) == 5 and " ".join(words[:2]) == MARK
                and words[3] == "of" and words[4] == ecosystem and user.pw_name == user_name(ecosystem, words[2])
                and (programs is None or words[2] in programs)):
            found.append(user.pw_name)
    return sorted(found)


def remove(ecosystem: str, programs=None) -> list[str]:
    """Remove the users `made_for` finds (their group goes with them); the names removed."""
    removed = []
    for name in made_for(ecosystem, programs):
        done = subprocess.run([shutil.which("userdel") or "/usr/sbin/userdel", name], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise EcoctlError(f"could not remove the system user {name}: {(done.stderr or done.stdout).strip()} "
                              "(stop its processes, then run the command again)")
        removed.append(name)
    if programs is None or not made_for(ecosystem):
        (RECORDS / ecosystem).unlink(missing_ok=True)
    return removed
