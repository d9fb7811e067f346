"""`ecoctl upgrade`'s per-file decisions (real files, real `git merge-file`), and git template refs."""

from __future__ import annotations

import pytest

from ecoctl.commands.upgrade import _file_change, merge3
from ecoctl.errors import UsageError
from ecoctl.template_sources import parse_git, with_rev

LABELS = ("yours", "template v1", "template v2")


def change(tmp_path, ours, base, theirs):
    folder = tmp_path / "svc"
    folder.mkdir(exist_ok=True)
    if ours is not None:
        (folder / "f.txt").write_bytes(ours)
    return _file_change(folder, "f.txt", base, theirs, LABELS)


def test_untouched_file_takes_the_templates_change(tmp_path):
    found = change(tmp_path, b"a\n", b"a\n", b"b\n")
    assert (found.action, found.content) == ("update", b"b\n")
    assert "-a\n+b\n" in found.diff


@pytest.mark.parametrize("ours, base, theirs", [
    (b"x\n", b"a\n", b"a\n"),      # only the team changed it
    (b"b\n", b"a\n", b"b\n"),      # both made the same change
    (None, b"a\n", b"b\n"),        # the team deleted it: it stays deleted
    (None, b"a\n", None),          # both deleted it
])
def test_nothing_to_do(tmp_path, ours, base, theirs):
    assert change(tmp_path, ours, base, theirs) is None


def test_file_the_template_deleted_goes_only_if_unchanged(tmp_path):
    assert change(tmp_path, b"a\n", b"a\n", None).action == "delete"
    kept = change(tmp_path, b"edited\n", b"a\n", None)
    assert kept.action == "kept" and kept.content is None


def test_new_template_file_is_added_or_conflicts_with_a_different_local_one(tmp_path):
    added = change(tmp_path, None, None, b"new\n")
    assert (added.action, added.content) == ("add", b"new\n")
    clash = change(tmp_path, b"mine\n", None, b"new\n")
    assert clash.action == "conflict" and b"<<<<<<< yours\nmine\n" in clash.content


def test_edits_in_different_places_merge_and_the_same_place_conflicts():
    base = b"".join(b"line %d\n" % i for i in range(10))
    ours = base.replace(b"line 1\n", b"line 1 ours\n")
    theirs = base.replace(b"line 8\n", b"line 8 theirs\n")
    merged, conflicted = merge3(ours, base, theirs, LABELS)
    assert not conflicted and b"line 1 ours" in merged and b"line 8 theirs" in merged
    merged, conflicted = merge3(base.replace(b"line 8\n", b"line 8 ours\n"), base, theirs, LABELS)
    assert conflicted and b"||||||| template v1\nline 8\n=======\nline 8 theirs\n>>>>>>> template v2" in merged


def test_binary_file_changed_on_both_sides_is_a_conflict_left_as_it_was(tmp_path):
    found = change(tmp_path, b"\0ours", b"\0base", b"\0theirs")
    assert found.action == "conflict" and found.content is None and "Binary file" in found.diff


@pytest.mark.parametrize("ref", ["git+ext::sh -c touch% /tmp/x#v1", "git+/srv/t#v1", "git+file://#v1",
                                 "git+https://h/r.git#--upload-pack=x"])
def test_only_plain_git_urls_are_accepted(ref):
    with pytest.raises(UsageError):
        parse_git(ref)


def test_git_refs():
    assert parse_git("git+https://h/team/t.git#v2") == ("https://h/team/t.git", "v2")
    assert parse_git("git+file:///srv/t") == ("file:///srv/t", "HEAD")
    assert with_rev("git+file:///srv/t#v1", "v2") == "git+file:///srv/t#v2"


def _record(version: int = 2):
    from ecoctl.template_record import TemplateRecord

    return TemplateRecord(template="python-fastapi", source="shipped", ref="python-fastapi", version=version,
                          commit=None, answers={"service_name": "shop", "port": 8100})


def test_the_pristine_render_is_one_file_read_back_byte_for_byte(tmp_path):
    from ecoctl.template_record import PRISTINE_DIR, RECORD_FILE, read_pristine, remove_pristine, write_pristine

    files = {"main.py": b"print('x')\n", "bin/blob": bytes(range(256)), "README.md": "é\n".encode()}
    write_pristine(tmp_path, "shop", {**files, RECORD_FILE: _record().dump()})
    assert sorted(p.name for p in (tmp_path / PRISTINE_DIR).iterdir()) == ["shop.json"]
    assert read_pristine(tmp_path, "shop", _record()) == dict(sorted(files.items()))
    assert read_pristine(tmp_path, "shop", _record(version=1)) is None  # saved for another version
    remove_pristine(tmp_path, "shop")
    assert read_pristine(tmp_path, "shop", _record()) is None


def test_a_pristine_folder_of_older_versions_is_still_read_and_replaced(tmp_path):
    from ecoctl.template_record import PRISTINE_DIR, RECORD_FILE, read_pristine, write_pristine

    folder = tmp_path / PRISTINE_DIR / "shop"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "a.py").write_bytes(b"a")
    (folder / RECORD_FILE).write_bytes(_record().dump())
    assert read_pristine(tmp_path, "shop", _record()) == {"pkg/a.py": b"a"}
    write_pristine(tmp_path, "shop", {"pkg/a.py": b"new", RECORD_FILE: _record().dump()})
    assert not folder.exists() and read_pristine(tmp_path, "shop", _record()) == {"pkg/a.py": b"new"}


def test_a_damaged_pristine_file_reads_as_gone(tmp_path):
    from ecoctl.template_record import pristine_path, read_pristine

    path = pristine_path(tmp_path, "shop")
    path.parent.mkdir(parents=True)
    for damage in ("{", '{"files": {"a": "not base64!"}}', '{"files": []}', "[]"):
        path.write_text(damage)
        assert read_pristine(tmp_path, "shop", _record()) is None, damage
