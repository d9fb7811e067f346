"""support.yaml_append: a new entry inserted as text gives the file the round-trip edit gives it,
and every case it does not handle is left to the round-trip edit (None)."""

from __future__ import annotations

from ecoctl.support.yaml import dump_roundtrip, fast_load, parse_yaml
from ecoctl.support.yaml_append import appended

ENTRY = {"build": {"context": "./services/svc", "args": {"A": "1"}}, "image": "eco/svc:latest", "init": True,
         "environment": {"PORT": "9100", "FLAG": "true", "LONG": "x" * 120},
         "ports": ["127.0.0.1:9100:9100"], "networks": ["portfolio-network"]}

TEXT = """\
# my comment on top
name: eco  # inline

services:
  # the database
  postgres:
    image: postgres:16  # pinned
    ports:
      - 127.0.0.1:5432:5432
  redis:
    image: redis
networks:
  portfolio-network:
    name: portfolio-network

volumes:
  postgres_data:
"""


def roundtrip_edit(text: str, entries: dict) -> str:
    document = parse_yaml("compose.yaml", text)
    for name, entry in entries.items():
        document["services"][name] = entry
    return dump_roundtrip(document)


def test_inserted_text_is_what_the_roundtrip_edit_writes():
    for text in (TEXT, TEXT.split("networks:")[0]):  # services last, too
        result = appended("compose.yaml", text, fast_load("compose.yaml", text), "services", {"svc": ENTRY, "two": ENTRY})
        assert result is not None
        assert result[0] == roundtrip_edit(text, {"svc": ENTRY, "two": ENTRY})
        assert result[1] == fast_load("compose.yaml", result[0])
        assert "# my comment on top" in result[0] and "# pinned" in result[0]


def test_cases_it_leaves_to_the_roundtrip_edit():
    def attempt(text: str, entries: dict = {"svc": ENTRY}):
        return appended("compose.yaml", text, fast_load("compose.yaml", text), "services", entries)

    assert attempt(TEXT, {"redis": ENTRY}) is None  # an existing entry is an update
    assert attempt(TEXT.replace("\n", "\r\n")) is None
    assert attempt(TEXT.replace("\n  ", "\n    ")) is None  # another indentation
    assert attempt("services: {postgres: {image: postgres}}\n") is None  # flow style
    assert attempt("services: {}\nname: eco\n") is None
    assert attempt("name: eco\n") is None
    assert attempt(TEXT, {}) is None


def test_end_of_the_block_found_by_lines_is_where_the_roundtrip_edit_puts_entries():
    """The insertion point is found by reading lines (no parse of the old file): comments before the
    next key, after the last entry, after `services:`, and blank lines all land as the round-trip
    edit puts them."""
    services_last = TEXT.split("networks:")[0]
    for text in (TEXT.replace("networks:", "# about networks\nnetworks:"), services_last + "# trailing\n# more\n",
                 TEXT.replace("services:\n", "services:  # ours\n\n  # first\n\n")):
        result = appended("compose.yaml", text, fast_load("compose.yaml", text), "services", {"svc": ENTRY})
        assert result is not None, text
        assert result[0] == roundtrip_edit(text, {"svc": ENTRY})
        assert result[1] == fast_load("compose.yaml", result[0])


def test_a_wrong_insertion_point_is_caught_by_the_parse_of_the_result():
    """A quoted value continued at column 0 looks like the next top-level key to a line reader: the
    result then does not read back as old data + new entries, and the round-trip edit takes over."""
    text = 'services:\n  a:\n    image: "one\ntwo"\n  b:\n    image: x\nname: eco\n'
    data = fast_load("compose.yaml", text)
    assert data["services"]["a"]["image"] == "one two"
    assert appended("compose.yaml", text, data, "services", {"svc": ENTRY}) is None
    for other in ("services: &all\n  a: 1\n", "'services':\n  a: 1\n", "services:\n  a: 1", "x: 1\nservices:\n  # only\n"):
        assert appended("compose.yaml", other, fast_load("compose.yaml", other), "services", {"svc": ENTRY}) is None
