from pathlib import Path

from ecoctl.model import EcosystemFile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_ecosystem_is_valid():
    model = EcosystemFile.load(EXAMPLES / "ecosystem.yaml").model
    assert {spec.pattern for spec in model.services.values()} == {"compose", "separate", "external"}
    assert model.services["analytics"].reads == ["portfolio", "loyalty"]
    assert model.image("postgres").startswith("registry.example.com/")
