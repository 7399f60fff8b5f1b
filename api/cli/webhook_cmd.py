"""`regbatch webhook ...`: where batch outcomes are POSTed, signed with a per-webhook secret."""

from __future__ import annotations

from typing import Annotated

import typer

from regbatch.api.cli._output import (
    JsonFlag,
    WideFlag,
    emit,
    err_console,
    print_id_table,
)
from regbatch.webhooks import SIGNATURE_HEADER, WebhookEvent

app = typer.Typer(help="Webhooks of batch outcomes.", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or name.")]
IdArgument = Annotated[str, typer.Argument(help="The webhook's id.")]


@app.command("create")
def create(
    org: OrgOption,
    url: Annotated[str, typer.Option("--url", help="http(s) address that receives the POSTs.")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help=f"One of {', '.join(WebhookEvent)}; repeat. Default: all."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Subscribe a URL to batch events; prints the signing secret, once."""
    from regbatch.services.webhooks import create_subscription

    created = create_subscription(org, url=url, events=event or [])

    def human() -> None:
        typer.echo(str(created.id))
        typer.echo(f"events: {', '.join(created.events)}")
        typer.echo(f"secret: {created.secret}")
        err_console.print(
            f"Store the secret now: it is not shown again. Verify the {SIGNATURE_HEADER} "
            "header with it (regbatch.webhooks.verify).",
            markup=False,
        )

    emit(
        {
            "id": str(created.id),
            "url": created.url,
            "events": created.events,
            "secret": created.secret,
        },
        as_json,
        human,
    )


@app.command("list")
def list_(org: OrgOption, wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List the organisation's webhooks (never their secrets)."""
    from regbatch.services.webhooks import list_subscriptions

    subscriptions = list_subscriptions(org)

    def table() -> None:
        rows = [
            [
                str(s.id),
                s.url,
                ", ".join(s.events),
                "yes" if s.active else "no",
                f"{s.created_at:%Y-%m-%d %H:%M}",
            ]
            for s in subscriptions
        ]
        print_id_table(("id", "url", "events", "active", "created"), rows, wide=wide)

    emit(subscriptions, as_json, table)


@app.command("delete")
def delete(webhook_id: IdArgument, org: OrgOption, as_json: JsonFlag = False) -> None:
    """Delete a webhook."""
    from regbatch.services.webhooks import delete_subscription

    delete_subscription(org, webhook_id)
    emit(
        {"id": webhook_id, "deleted": True},
        as_json,
        lambda: typer.echo(f"webhook {webhook_id} deleted"),
    )


@app.command("test")
def test(
    webhook_id: IdArgument,
    org: OrgOption,
    batch: Annotated[str, typer.Option("--batch", help="The batch whose event to send.")],
    attempts: Annotated[
        int | None, typer.Option(help="Attempts at most (default: REGBATCH_WEBHOOK_ATTEMPTS).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send a batch's current event to one webhook now (exit 1 if it was not delivered)."""
    from regbatch.tasks.webhooks import deliver_to_subscription

    result = deliver_to_subscription(org, webhook_id, batch, attempts=attempts)

    def human() -> None:
        outcome = (
            f"delivered (HTTP {result.status_code})"
            if result.delivered
            else f"failed: {result.error}"
        )
        typer.echo(
            f"{result.event} to {result.url}: {outcome} after {result.attempts} attempt(s); "
            f"delivery {result.delivery_id}"
        )

    emit(result, as_json, human)
    if not result.delivered:
        raise typer.Exit(1)
