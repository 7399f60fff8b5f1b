"""Which webhook targets are refused: every numeric form of loopback, private, link-local,
unspecified, multicast and reserved addresses, IPv4 inside IPv6, credentials in URLs; and the
delivery transport, which connects only to the address it checked (no second DNS lookup)."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from regbatch.tasks.webhook_transport import GuardedTransport
from regbatch.tasks.webhooks import WebhookClient
from regbatch.webhook_targets import (
    IPAddress,
    TargetRefusedError,
    address_problem,
    parse_address,
)
from regbatch.webhooks import url_problems

PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")

REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
    ("http://127.0.0.1:4200/api/flows", "127.0.0.1, a loopback address"),
    ("http://10.0.0.1/", "10.0.0.1, a private-network address"),
    ("http://192.168.1.20:8080/x", "192.168.1.20, a private-network address"),
    ("http://172.16.0.1/", "172.16.0.1, a private-network address"),
    ("http://100.64.0.1/", "100.64.0.1, a shared (carrier-grade NAT) address"),
    ("http://2130706433/", "127.0.0.1, a loopback address"),
    ("http://0x7f.1/", "127.0.0.1, a loopback address"),
    ("http://0x7f000001/", "127.0.0.1, a loopback address"),
    ("http://017700000001/", "127.0.0.1, a loopback address"),
    ("http://0177.0.0.1/", "127.0.0.1, a loopback address"),
    ("http://127.1/", "127.0.0.1, a loopback address"),
    ("http://127.0.0.1./", "127.0.0.1, a loopback address"),
    ("http://0/", "0.0.0.0, the unspecified address"),
    ("http://224.0.0.1/", "224.0.0.1, a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1, a reserved address"),
    ("http://255.255.255.255/", "255.255.255.255, a reserved address"),
    ("http://[::1]/", "::1, a loopback address"),
    ("http://[::]/", "::, the unspecified address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address (127.0.0.1, inside ::ffff:7f00:1)"),
    ("http://[::ffff:a9fe:a9fe]/", "a link-local address (e.g. the cloud metadata service) "
     "(169.254.169.254, inside ::ffff:a9fe:a9fe)"),
    ("http://[::127.0.0.1]/", "a loopback address (127.0.0.1, inside ::7f00:1)"),
    ("http://[::ffff:0:10.0.0.1]/", "a private-network address (10.0.0.1, inside"),
    ("http://[2002:7f00:1::]/", "a loopback address (127.0.0.1, inside 2002:7f00:1::)"),
    ("http://[64:ff9b::10.0.0.1]/", "a private-network address (10.0.0.1, inside 64:ff9b::a00:1)"),
    ("http://[fe80::1]/", "fe80::1, a link-local address"),
    ("http://[fc00::1]/", "fc00::1, a private-network address"),
    ("http://[fd12:3456::1]/", "fd12:3456::1, a private-network address"),
    ("http://[fec0::1]/", "fec0::1, a reserved address"),
    ("http://[ff02::1]/", "ff02::1, a multicast address"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "expected"), REFUSED)
def test_every_form_of_a_non_public_address_is_refused_naming_url_address_and_setting(
    url: str, expected: str
) -> None:
    [problem] = url_problems(url)
    assert problem.field == "url"
    assert problem.message.startswith(f"webhook URL {url.rstrip('/')}")
    assert expected in problem.message
    assert "webhooks go only to public addresses" in problem.message
    assert (
        "REGBATCH_WEBHOOK_ALLOW_PRIVATE=1" in problem.message
        or "no setting allows this range" in problem.message
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/regbatch",
        "http://8.8.8.8/in",
        "http://[2606:4700:4700::1111]/in",
        "http://[::ffff:8.8.8.8]/in",
        "http://[64:ff9b::8.8.8.8]/in",  # DNS64 of a public address
        "https://hooks.example.com:8443/in?token=abc",
    ],
)
def test_public_targets_are_accepted(url: str) -> None:
    assert url_problems(url) == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/x", "http://10.1.2.3/", "http://[::1]:9/", "http://0x7f.1/"],
)
def test_the_setting_allows_loopback_and_private_targets(url: str) -> None:
    assert url_problems(url, allow_private=True) == []


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.251/", "multicast"),
        ("http://240.1.2.3/", "reserved"),
    ],
)
def test_the_setting_never_allows_metadata_multicast_unspecified_or_reserved(
    url: str, kind: str
) -> None:
    [problem] = url_problems(url, allow_private=True)
    assert kind in problem.message and "no setting allows this range" in problem.message


def test_credentials_in_a_url_are_refused_and_never_echoed() -> None:
    for allow in (False, True):
        problems = url_problems("https://alice:s3cr3t@hooks.example.com/in", allow_private=allow)
        assert [p.field for p in problems] == ["url"]
        assert "credentials (user:password@)" in problems[0].message
        assert "s3cr3t" not in problems[0].message and "alice" not in problems[0].message
    leaky = url_problems("ftp://alice:s3cr3t@hooks.example.com/in")
    assert "http or https" in leaky[0].message and "s3cr3t" not in leaky[0].message


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://x/"])
def test_schemes_other_than_http_and_https_are_refused(url: str) -> None:
    assert "is not an http or https URL" in url_problems(url, allow_private=True)[0].message


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("hooks.example.com", None),
        ("0xdeadbeef.example", None),
        ("1.2.3.4.5", None),
    ],
)
def test_numeric_hosts_are_read_as_the_resolver_reads_them(host: str, address: str | None) -> None:
    parsed = parse_address(host)
    assert (str(parsed) if parsed else None) == address


# --- delivery: resolve, check every address, connect to the checked one --------------------


def _guarded(
    answers: list[IPAddress], seen: list[httpx.Request], lookups: list[str], allow: bool = False
) -> GuardedTransport:
    def resolver(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return answers

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    return GuardedTransport(
        allow_private=allow, inner=httpx.MockTransport(handler), resolver=resolver
    )


@pytest.mark.anyio
async def test_the_connection_goes_to_the_checked_address_with_the_name_kept() -> None:
    seen: list[httpx.Request] = []
    lookups: list[str] = []
    async with httpx.AsyncClient(transport=_guarded([PUBLIC], seen, lookups)) as client:
        response = await client.post("https://hooks.example.com:8443/in?x=1", content=b"{}")
    assert response.status_code == 200 and lookups == ["hooks.example.com"]
    [request] = seen
    assert str(request.url) == f"https://{PUBLIC}:8443/in?x=1"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.content == b"{}"


@pytest.mark.anyio
async def test_a_name_with_any_refused_address_reaches_nothing() -> None:
    seen: list[httpx.Request] = []
    lookups: list[str] = []
    transport = _guarded([PUBLIC, LOOPBACK], seen, lookups)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(TargetRefusedError) as caught:
            await client.post("http://rebind.example.com/in?token=t0p", content=b"{}")
    assert str(caught.value).startswith(
        "webhook URL http://rebind.example.com/in resolves to 127.0.0.1, a loopback address"
    )
    assert "REGBATCH_WEBHOOK_ALLOW_PRIVATE=1" in str(caught.value)
    assert "t0p" not in str(caught.value)
    assert seen == []


@pytest.mark.anyio
async def test_the_client_reports_a_refusal_as_a_permanent_failure() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = WebhookClient(
        transport=httpx.MockTransport(handler),
        allow_private=False,
        resolver=lambda host, port: [ipaddress.ip_address("::ffff:169.254.169.254")],
    )
    async with client:
        answer = await client.post("http://metadata.example.com/latest", b"{}", {})
    assert answer.status_code is None and not answer.transient
    assert answer.error is not None and answer.error.startswith(
        "refused: webhook URL http://metadata.example.com/latest resolves to "
        "::ffff:a9fe:a9fe, a link-local address"
    )
    assert "no setting allows this range" in answer.error
    assert seen == []


@pytest.mark.anyio
async def test_a_name_that_does_not_resolve_is_a_transient_connection_failure() -> None:
    def resolver(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    client = WebhookClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200)),
        allow_private=False,
        resolver=resolver,
    )
    async with client:
        answer = await client.post("http://nowhere.invalid/in", b"{}", {})
    assert answer.transient and answer.error == (
        "connection failed: nowhere.invalid does not resolve (Name or service not known)"
    )


def test_address_problem_judges_the_ipv4_inside_ipv6() -> None:
    assert address_problem(ipaddress.ip_address("::ffff:8.8.8.8"), False) is None
    assert address_problem(ipaddress.ip_address("::ffff:10.0.0.1"), True) is None
    assert address_problem(ipaddress.ip_address("::ffff:10.0.0.1"), False) == (
        "a private-network address (10.0.0.1, inside ::ffff:a00:1)"
    )


@pytest.mark.anyio
async def test_credentials_stored_before_they_were_refused_are_not_sent() -> None:
    seen: list[httpx.Request] = []
    lookups: list[str] = []
    async with httpx.AsyncClient(transport=_guarded([PUBLIC], seen, lookups)) as client:
        with pytest.raises(TargetRefusedError, match="has credentials") as caught:
            await client.post("https://bob:hunter2@hooks.example.com/in", content=b"{}")
    assert "hunter2" not in str(caught.value) and seen == [] and lookups == []
