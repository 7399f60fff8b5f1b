"""Settings: validated once, with errors that name the variable."""

import pytest

from regbatch.errors import ConfigurationError
from regbatch.settings import get_settings, reset_settings


@pytest.fixture(autouse=True)
def _fresh_settings():
    reset_settings()
    yield
    reset_settings()


def test_default_is_an_embedded_sqlite_file_in_the_data_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("REGBATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("REGBATCH_DATA_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'regbatch.db'}"
    assert settings.is_embedded_database


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "REGBATCH_DATABASE_URL='not a url' is not a database URL"),
        ("mysql://u@h/db", "REGBATCH_DATABASE_URL uses driver 'mysql'; use one of"),
    ],
)
def test_bad_database_url_names_the_variable(monkeypatch, url: str, message: str) -> None:
    monkeypatch.setenv("REGBATCH_DATABASE_URL", url)
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        get_settings()


def test_bad_number_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("REGBATCH_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="REGBATCH_LEASE_SECONDS: "):
        get_settings()


def test_the_readme_table_lists_every_setting() -> None:
    """README's "Environment variables" table is where people look: every setting is a row."""
    from pathlib import Path

    from regbatch.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("Environment variables, all in")
    table = readme[start : readme.index("\n\n", readme.index("| variable", start))]
    missing = [
        f"REGBATCH_{name.upper()}"
        for name in Settings.model_fields
        if f"`REGBATCH_{name.upper()}`" not in table
    ]
    assert not missing, f"add a row for each to README.md's settings table: {missing}"
