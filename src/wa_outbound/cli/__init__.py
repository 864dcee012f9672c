"""The command line, `wa-outbound`: the service's commands (main) and the operator's (ops)."""

from wa_outbound.cli.main import main, openapi_json

__all__ = ["main", "openapi_json"]
