"""`regbatch api ...`: the REST API server."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="The REST API.", no_args_is_help=True)


@app.callback()
def _api() -> None:
    """The REST API (FastAPI): the seed's batch endpoints, templates and webhooks."""


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the REST API with uvicorn (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    uvicorn.run("regbatch.api.rest:create_app", factory=True, host=host, port=port)
