"""The portfolio web app's API document is the portfolio service's own: the typed client generated
from it at build time (openapi-typescript) can never drift from the service."""

from __future__ import annotations

import json
import sys

from ecoctl.support.resources import templates_dir


def test_the_committed_openapi_document_is_the_portfolio_services():
    sys.path.insert(0, str(templates_dir() / "portfolio" / "files"))
    try:
        from portfolio_service.app import create_app
        from portfolio_service.settings import Settings
    finally:
        sys.path.pop(0)
    app = create_app(Settings(database_host="h", database_port=1, database_name="d", database_user="u",
                              database_password="p", oidc_issuer="http://issuer/", oidc_audience="portfolio"))
    committed = json.loads((templates_dir() / "portfolio-web" / "files" / "api" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(app.openapi())), (
        "templates/portfolio-web/files/api/openapi.json differs from the portfolio service's OpenAPI "
        "document: save it again (see the portfolio-web template's README) and bump both templates' versions")
