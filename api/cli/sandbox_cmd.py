"""`regbatch sandbox serve`: the stand-in registration platform, for demos and local runs."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="The sandbox registration platform.", no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    latency_ms: Annotated[float, typer.Option(help="Added to every step call.")] = 0.0,
    account_spacing_s: Annotated[float, typer.Option(help="Account creation rate limit.")] = 60.0,
) -> None:
    """Serve the sandbox platform (its service key is REGBATCH_PLATFORM_SERVICE_KEY)."""
    from regbatch.sandbox.server import serve as run_server
    from regbatch.settings import get_settings

    key = get_settings().platform_service_key.get_secret_value()
    typer.echo(f"sandbox platform on http://{host}:{port} (Ctrl+C to stop)")
    run_server(
        host=host,
        port=port,
        service_key=key,
        latency_ms=latency_ms,
        account_spacing_s=account_spacing_s,
    )
