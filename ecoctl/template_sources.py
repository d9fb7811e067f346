"""Where a service's template comes from, at the version it was rendered from.

A template reference (ecosystem.yaml's `template:`, add-service's `--template`) is a name (shipped,
or in the team's `templates_dir`), a folder path, or a git repository:
`git+https://host/team/templates.git#v2`, `git+file:///srv/templates#v1` (after `#`: a tag, branch
or commit; HEAD when omitted). A git template is fetched into a bare mirror under
`~/.cache/ecoctl/templates/<hash>/` ($XDG_CACHE_HOME respected) and each commit is exported there with
`git archive` (no checkout, no hooks, no submodules); the commit is what a service records. Nothing in
a template is ever executed: its manifest is read as plain YAML and its files are rendered by a
sandboxed Jinja2 environment.

Old versions (the base of `ecoctl upgrade`) come from, in order:
  - git: the recorded commit, exactly;
  - a folder template whose `version` is the recorded one, or its `versions/<N>/` folder (a shipped
    template keeps every released version there: `templates/python-fastapi/versions/1/`);
  - the pristine render saved in `.ecoctl/pristine/<service>.json` when the service was rendered
    (see ecoctl/template_record.py), which covers a team folder that kept no old versions.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ecoctl.errors import UsageError
from ecoctl.service_templates import TemplateInfo, find_template, load_template

GIT_PREFIX = "git+"
GIT_SCHEMES = ("file://", "https://", "http://", "ssh://")
VERSIONS_DIR = "versions"


@dataclass(frozen=True)
class Source:
    """A resolved template reference: the template and where exactly it came from."""

    template: TemplateInfo
    kind: str
    """shipped, team, path or git."""
    ref: str
    """The reference as ecosystem.yaml spells it (name, path, or git+URL#REV)."""
    url: str | None = None
    commit: str | None = None


def is_git(ref: str | None) -> bool:
    return bool(ref) and ref.startswith(GIT_PREFIX)


def parse_git(ref: str) -> tuple[str, str]:
    """`git+https://h/r.git#v2` -> (`https://h/r.git`, `v2`); an unsupported form is one UsageError."""
    url, _, rev = ref[len(GIT_PREFIX):].partition("#")
    if not url.startswith(GIT_SCHEMES) or len(url) <= len("file://"):
        raise UsageError(f"template {ref!r}: use git+https://HOST/REPO.git#TAG or git+file:///PATH#TAG")
    if rev.startswith("-") or any(c.isspace() for c in rev):
        raise UsageError(f"template {ref!r}: {rev!r} is not a tag, branch or commit")
    return url, rev or "HEAD"


def with_rev(ref: str, rev: str) -> str:
    url, _ = parse_git(ref)
    return f"{GIT_PREFIX}{url}#{rev}"


def resolve(ref: str, extra_dirs: list[Path] | tuple[Path, ...] = (), *, fetch: bool = False) -> Source:
    """The template `ref` names. A git ref is fetched only when its revision is not cached yet, or
    always with `fetch=True` (a branch or a moved tag is then seen)."""
    if is_git(ref):
        url, rev = parse_git(ref)
        folder, commit = git_export(url, rev, fetch=fetch)
        return Source(load_template(folder, "git"), "git", ref, url, commit)
    template = find_template(ref, extra_dirs)
    return Source(template, template.source, ref)


def at_version(source: Source, version: int) -> TemplateInfo | None:
    """The folder template of `source` at `version` (itself, or its versions/<N>/), or None."""
    if source.template.version == version:
        return source.template
    folder = source.template.path / VERSIONS_DIR / str(version)
    if not (folder / "template.yaml").is_file():
        return None
    old = load_template(folder, source.kind)
    if old.version != version:
        raise UsageError(f"{folder}/template.yaml says version {old.version}, but its folder is "
                         f"{VERSIONS_DIR}/{version}: fix one of them")
    return old


def versions(source: Source) -> list[int]:
    """Every version of a folder template ecoctl can render (the current one, and versions/<N>/)."""
    found = {source.template.version}
    folder = source.template.path / VERSIONS_DIR
    if source.kind != "git" and folder.is_dir():
        found |= {int(child.name) for child in folder.iterdir() if child.name.isdigit()
                  and (child / "template.yaml").is_file()}
    return sorted(found)


def recorded_template(record, source: Source, *, offline: bool = False) -> TemplateInfo | None:
    """The template at the version a service's record (template_record.TemplateRecord) names: the
    recorded git commit, or the folder's current or versions/<N>/ release; None when not kept.

    A git commit is fetched from the repository ecosystem.yaml names (`source`), and only when the
    record names that repository too: a record is a file in the service's folder, and never makes
    ecoctl fetch from elsewhere. `offline`: only a commit already exported in the cache (a plan
    never fetches because of a record)."""
    if record.source == "git":
        if not record.commit or not is_git(record.ref) or source.kind != "git" \
                or parse_git(record.ref)[0] != source.url:
            return None
        if offline:
            tree = _mirror(source.url) / record.commit
            return load_template(tree, "git") if (tree / "template.yaml").is_file() else None
        return resolve(with_rev(source.ref, record.commit)).template
    if record.template != source.template.name or source.kind == "git":
        return None
    return at_version(source, record.version)


# --- git ---------------------------------------------------------------------------------------

def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecoctl" / "templates"


def git_export(url: str, rev: str, *, fetch: bool) -> tuple[Path, str]:
    """(folder holding the tree of `url` at `rev`, its full commit id)."""
    mirror = _mirror(url)
    bare = mirror / "repo.git"
    if not bare.is_dir():
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git(["init", "--quiet", "--bare", str(bare)], url)
        fetch = True
    commit = None if fetch or rev == "HEAD" else _rev_parse(bare, rev)  # HEAD: the remote's, asked each time
    if commit is None:
        _git(["--git-dir", str(bare), "fetch", "--quiet", "--force", "--tags", "--", url,
              "+refs/heads/*:refs/heads/*"], url)
        if rev != "HEAD":
            commit = _rev_parse(bare, rev)
        else:
            heads = [line.split("\t") for line in _git(["ls-remote", "--", url, "HEAD"], url).splitlines()]
            commit = next((sha for sha, name in heads if name == "HEAD"), None)
        if commit is None and len(rev) >= 7 and all(c in "0123456789abcdef" for c in rev.lower()):
            _git(["--git-dir", str(bare), "fetch", "--quiet", "--", url, rev], url)  # a bare commit id
            commit = _rev_parse(bare, rev)
        if commit is None:
            raise UsageError(f"git template {url}: no tag, branch or commit {rev!r}; "
                             "check the part after # (git ls-remote URL lists them)")
    if len(commit) < 40 or not all(c in "0123456789abcdef" for c in commit):
        raise UsageError(f"git template {url}: {rev!r} did not resolve to a commit ({commit[:50]!r})")
    tree = mirror / commit
    if not tree.is_dir():
        _export(bare, commit, tree, url)
    return tree, commit


def _mirror(url: str) -> Path:
    return cache_root() / hashlib.sha256(url.encode()).hexdigest()[:16]


def _rev_parse(bare: Path, rev: str) -> str | None:
    result = subprocess.run(["git", "--git-dir", str(bare), "rev-parse", "--verify", "--quiet",
                             f"{rev}^{{commit}}"], capture_output=True, text=True, env=_git_env())
    return result.stdout.strip() or None if result.returncode == 0 else None


def _export(bare: Path, commit: str, tree: Path, url: str) -> None:
    import io
    import shutil
    import tarfile
    import tempfile

    archive = subprocess.run(["git", "--git-dir", str(bare), "archive", "--format=tar", commit],
                             capture_output=True, env=_git_env())
    if archive.returncode != 0:
        raise UsageError(f"git template {url}: cannot export {commit[:12]}: "
                         f"{archive.stderr.decode(errors='replace').strip()[:200]}")
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}.", dir=tree.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")  # no absolute paths, no links out of the tree
            else:  # Python before 3.11.4 (Debian 12's 3.11.2): files, folders and links inside the tree
                leaving = next((m for m in tar.getmembers() if _leaves_tree(m)), None)
                if leaving is not None:
                    raise _refused(url, leaving.name, commit, "LinkOutsideDestinationError")
                tar.extractall(staging, members=[m for m in tar.getmembers() if m.isfile() or m.isdir()])
        os.rename(staging, tree)
    except FileExistsError:  # another process exported it first
        shutil.rmtree(staging, ignore_errors=True)
    except getattr(tarfile, "FilterError", ()) as exc:  # e.g. a link that leaves the tree
        shutil.rmtree(staging, ignore_errors=True)
        member = getattr(getattr(exc, "tarinfo", None), "name", "a file")
        raise _refused(url, member, commit, type(exc).__name__) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _leaves_tree(member) -> bool:
    """A tar member whose path, or whose link's target, is absolute or climbs out of the tree."""
    import posixpath

    paths = [member.name]
    if member.issym():
        paths.append(posixpath.join(posixpath.dirname(member.name), member.linkname))
    elif member.islnk():
        paths.append(member.linkname)
    return any(path.startswith("/") or posixpath.normpath(path).split("/")[0] == ".." for path in paths)


def _refused(url: str, member: str, commit: str, kind: str) -> UsageError:
    return UsageError(f"git template {url}: {member[:200]!r} at {commit[:12]} is refused ({kind}: "
                      "a link or path that leaves the template): remove it from the repository")


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROTOCOL_FROM_USER": "0", "GIT_ALLOW_PROTOCOL": "file:https:http:ssh"}


def _git(args: list[str], url: str) -> str:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, env=_git_env(), timeout=300)
    except FileNotFoundError:
        raise UsageError("git is not installed: install it to use git+ templates") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git template {url}: git did not answer within 300 s; check the URL") from None
    if result.returncode != 0:
        problem = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise UsageError(f"git template {url}: {problem}; check the URL and that you can clone it")
    return result.stdout
