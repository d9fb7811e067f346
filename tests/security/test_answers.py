"""Values that go into a service's files are checked against their use (issue 27, item 9): an image
reference with a lone surrogate broke every `plan` (`unexpected UnicodeEncodeError`), and one with a
newline (`"line1\nRUN id"`) added a `RUN` line to the Dockerfile; a template record's answers went
into files unchecked. Each is refused with one line, before anything is written."""

import pytest

from tests.helpers import assert_refused, new_ecosystem_dir, run_ecoctl, snapshot


@pytest.fixture
def root(tmp_path):
    return new_ecosystem_dir(tmp_path, "docker")


@pytest.mark.parametrize("image, words", [
    (r'"py\ud800thon"', ["surrogate"]),
    (r'"line1\nRUN id"', ["images.python", "not an image reference"]),
    (r'"python:3.12\0"', ["images.python", "not an image reference"]),
    (r'"python:3.12 AS x"', ["images.python", "not an image reference"]),
])
def test_a_bad_image_reference_is_refused_by_every_command(root, image, words):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("images: {}", f"images: {{python: {image}}}"))
    before = snapshot(root)
    for command in (["plan"], ["add-service", "edge", "--no-apply"], ["status"]):
        assert_refused(run_ecoctl(*command, cwd=root), 2, "ecosystem.yaml", *words)
    assert snapshot(root) == before
    assert not (root / "services" / "edge").exists()


def test_good_image_references_are_accepted(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("images: {}", "images: {python: 'registry.example.com:5000/team/"
                                             "python:3.12-slim', postgres: 'postgres@sha256:" + "a" * 64 + "'}"))
    result = run_ecoctl("add-service", "edge", "--no-apply", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "ARG BASE_IMAGE=registry.example.com:5000/team/python:3.12-slim\n" in \
        (root / "services" / "edge" / "Dockerfile").read_text()


@pytest.mark.parametrize("key, value", [("core.postgres.version", '"16\\nRUN id"'),
                                        ("registry", '"reg.example.com\\nRUN id"')])
def test_other_values_that_reach_images_are_checked(root, key, value):
    spec = root / "ecosystem.yaml"
    text = spec.read_text()
    text = text.replace('    version: "16"', f"    version: {value}") if key.startswith("core") \
        else text.replace("images: {}", f"images: {{}}\nregistry: {value}")
    spec.write_text(text)
    assert_refused(run_ecoctl("plan", cwd=root), 2, "ecosystem.yaml", key)


@pytest.mark.parametrize("answer", ['"The edge service\\nRUN id"', '"a\\0b"', '"\\ud800"', '"\\x1b]0;pwned\\x07"'])
def test_a_tampered_record_answer_is_refused(root, answer):
    assert run_ecoctl("add-service", "edge", "--no-apply", cwd=root).returncode == 0
    record = root / "services" / "edge" / ".ecoctl-template.yml"
    text = record.read_text()
    assert "answers:\n" in text
    record.write_text(text.replace("answers:\n", f"answers:\n  description: {answer}\n"))
    before = snapshot(root)
    for command in (["plan"], ["upgrade", "edge", "--dry-run"]):
        assert_refused(run_ecoctl(*command, cwd=root), 2, ".ecoctl-template.yml")
    assert snapshot(root) == before


def test_a_tampered_record_image_answer_is_refused(root):
    assert run_ecoctl("add-service", "edge", "--no-apply", cwd=root).returncode == 0
    record = root / "services" / "edge" / ".ecoctl-template.yml"
    record.write_text(record.read_text().replace("base_image: python:3.12-slim", "base_image: 'python;id'"))
    assert_refused(run_ecoctl("plan", cwd=root), 2, ".ecoctl-template.yml", "not an image reference")
