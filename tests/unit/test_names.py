import pytest

from ecoctl.errors import UsageError
from ecoctl.names import check_service_name, database_name, env_prefix, role_name


@pytest.mark.parametrize("name", ["Loyalty", "1x", "a", "x" * 41, "x;drop", "loyalty_points", "-a",
                                  "loyalty-", "a--b", "", "löyalty"])
def test_bad_names_are_refused(name):
    with pytest.raises(UsageError):
        check_service_name(name)


@pytest.mark.parametrize("name", ["postgres", "template0", "template1", "authentik", "redis", "prometheus",
                                  "grafana", "all", "core"])
def test_reserved_names_are_refused(name):
    """The core stack's components; a core template's service (portfolio) is add-service's to refuse
    (tests/templates/test_core_template.py)."""
    with pytest.raises(UsageError, match="reserved"):
        check_service_name(name)


def test_good_names_and_sql_names():
    assert check_service_name("loyalty-points") == "loyalty-points"
    assert check_service_name("x" * 40)
    assert database_name("loyalty-points") == "loyalty_points_db"
    assert role_name("loyalty-points") == "loyalty_points_user"
    assert env_prefix("loyalty-points") == "LOYALTY_POINTS"
