"""Declarative sources: every auth and paginator kind against a fake, and one-line errors for bad files.

The fake serves one list of records five ways (cursor, offset, page number, Link header, next URL)
behind whichever auth the test asks for, so each kind is checked end to end through the engine.
"""

from __future__ import annotations

import base64
import datetime as dt
import textwrap
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import kpihub
from kpihub.errors import ConfigError
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, cli, reset_registry, route

RECORDS = [
    {"id": n, "name": f"item {n}", "updated": f"2026-03-{1 + n // 10:02d}T10:00:{n % 60:02d}Z", "score": str(n % 11)}
    for n in range(1, 48)
]


class FakeItems(FakeAPIServer):
    """``/items/<style>`` pages RECORDS in the style named; ``auth`` says which credentials it wants."""

    def __init__(self, auth: str = "bearer", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.auth, self.access_token = auth, "access-1"
        self.token_requests = 0

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.path == "/oauth/token":
            return None
        header = request.header("authorization") or ""
        ok = {
            "bearer": header == "Bearer sekret-token",
            "api_key_header": request.header("x-api-key") == "sekret-key",
            "api_key_query": request.query.get("api_key") == "sekret-key",
            "basic": header == "Basic " + base64.b64encode(b"me@example.com/token:sekret-pw").decode(),
            "oauth2_refresh": header == f"Bearer {self.access_token}",
        }[self.auth]
        return None if ok else self.json({"message": "unauthorized"}, status=401)

    @route("POST", r"^/oauth/token$")
    def token(self, request: FakeRequest) -> FakeResponse:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        if form.get("refresh_token") != "sekret-refresh" or form.get("grant_type") != "refresh_token":
            return self.json({"error": "invalid_grant"}, status=400)
        self.token_requests += 1
        return self.json({"access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"})

    def _since(self, request: FakeRequest) -> list[dict[str, Any]]:
        since = request.query.get("since")
        return [r for r in RECORDS if since is None or r["updated"] >= since]

    @route("GET", r"^/items/cursor$")
    def by_cursor(self, request: FakeRequest) -> FakeResponse:
        rows = self._since(request)
        start = int(request.query.get("cursor", "0"))
        page = rows[start : start + 10]
        more = start + 10 < len(rows)
        return self.json({"data": page, "next": str(start + 10) if more else None, "done": not more})

    @route("GET", r"^/items/offset$")
    def by_offset(self, request: FakeRequest) -> FakeResponse:
        rows = self._since(request)
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        return self.json({"results": rows[offset : offset + limit], "total": len(rows)})

    @route("GET", r"^/items/page$")
    def by_page(self, request: FakeRequest) -> FakeResponse:
        rows = self._since(request)
        page, size = int(request.query["page"]), int(request.query["per_page"])
        return self.json(rows[(page - 1) * size : page * size])  # a bare array, as Delighted sends

    @route("GET", r"^/items/link$")
    def by_link(self, request: FakeRequest) -> FakeResponse:
        rows = self._since(request)
        page = int(request.query.get("page", "1"))
        headers = {}
        if page * 10 < len(rows):
            query = urllib.parse.urlencode({**request.query, "page": page + 1})
            headers["Link"] = f'<{self.url}/items/link?{query}>; rel="next", <{self.url}/items/link>; rel="first"'
        return self.json({"items": rows[(page - 1) * 10 : page * 10]}, headers=headers)

    @route("GET", r"^/items/next$")
    def by_next_url(self, request: FakeRequest) -> FakeResponse:
        rows = self._since(request)
        start = int(request.query.get("start", "0"))
        nxt = f"{self.url}/items/next?start={start + 10}" if start + 10 < len(rows) else None
        return self.json({"values": rows[start : start + 10], "links": {"next": nxt}})

    @route("GET", r"^/me$")
    def me(self, request: FakeRequest) -> FakeResponse:
        return self.json({"ok": True})


AUTH = {
    "bearer": 'type = "bearer"\ntoken = "{token}"',
    "api_key_header": 'type = "api_key"\nname = "X-API-Key"\nvalue = "{token}"',
    "api_key_query": 'type = "api_key"\nname = "api_key"\nin = "query"\nvalue = "{token}"',
    "basic": 'type = "basic"\nusername = "{user}/token"\npassword = "{token}"',
    "oauth2_refresh": 'type = "oauth2_refresh"\ntoken_url = "{base_url}/oauth/token"\nclient_id = "cid"\n'
    'client_secret = "{token}"\nrefresh_token = "{refresh}"',
}
SECRETS = {
    "bearer": "sekret-token",
    "api_key_header": "sekret-key",
    "api_key_query": "sekret-key",
    "basic": "sekret-pw",
    "oauth2_refresh": "csecret",
}
PAGING = {
    "cursor": ('records = "data"', 'type = "cursor"\ncursor_path = "next"\nparam = "cursor"\nstop_path = "done"'),
    "offset": ('records = "results"', 'type = "offset"\nlimit = 10\ntotal_path = "total"'),
    "page": ('records = ""', 'type = "page"\nsize = 10'),
    "link": ('records = "items"', 'type = "link_header"'),
    "next": ('records = "values"', 'type = "next_url"\npath = "links.next"'),
}


def spec_text(auth: str = "bearer", paging: str = "cursor") -> str:
    records, paginator = PAGING[paging]
    return textwrap.dedent(
        f"""\
        [source]
        name = "items"
        title = "Items"

        [settings.token]
        type = "secret"
        [settings.user]
        default = "me@example.com"
        [settings.refresh]
        type = "secret"
        default = "sekret-refresh"

        [auth]
        {{auth}}

        [check]
        path = "/me"

        [streams.items]
        path = "/items/{paging}"
        {records}
        primary_key = ["id"]
        cursor_field = "updated"

        [streams.items.paginator]
        {{paginator}}

        [streams.items.incremental]
        param = "since"
        format = "iso"

        [streams.items.fields]
        id = "int64"
        name = "string"
        updated = "timestamp"
        score = {{{{ type = "int64", minimum = 0 }}}}

        [streams.items.canonical]
        table = "survey_responses"
        [streams.items.canonical.columns]
        response_id = "CAST(id AS VARCHAR)"
        item = "'nps'"
        responded_at = "updated"
        score = "score"
        scale_min = "0"
        scale_max = "10"
        """
    ).format(auth=AUTH[auth], paginator=paginator)


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "items.toml"
    path.write_text(text)
    return path


def run(tmp_path: Path, server: FakeItems, source: kpihub.DeclarativeSource, **settings: Any) -> kpihub.Pipeline:
    from kpihub.testing.conformance import SourceConformance

    class Suite(SourceConformance[FakeItems]):
        pass

    Suite.source = source
    values = {"base_url": server.url, "token": SECRETS[server.auth], **settings}
    if server.auth == "oauth2_refresh":
        values["token"] = "csecret"
    return Suite().pipeline(tmp_path, values)


@pytest.mark.parametrize("auth", list(AUTH))
def test_every_auth_kind_authenticates(tmp_path, auth):
    source = kpihub.DeclarativeSource.from_file(write_spec(tmp_path, spec_text(auth)))
    with FakeItems(auth=auth) as server:
        result = run(tmp_path, server, source).sync()
        assert result.ok, [s.error for s in result.streams]
        assert result.streams[0].records == len(RECORDS)
        if auth == "oauth2_refresh":
            assert server.token_requests == 1
        bad = run(tmp_path / "bad", server, source, token="wrong", refresh="wrong").sync()
    assert not bad.ok and ("401" in bad.streams[0].error or "refused the refresh token" in bad.streams[0].error)
    assert "wrong" not in bad.streams[0].error and SECRETS[auth] not in bad.streams[0].error


@pytest.mark.parametrize("paging", list(PAGING))
def test_every_paginator_reads_every_record_once(tmp_path, paging):
    source = kpihub.DeclarativeSource.from_file(write_spec(tmp_path, spec_text(paging=paging)))
    with FakeItems() as server:
        p = run(tmp_path, server, source)
        result = p.sync()
        assert result.ok, [s.error for s in result.streams]
        pages = [r for r in server.requests if r.path.startswith("/items/")]
    assert len(pages) == 5  # 47 records, 10 a page
    with p.open_destination(read_only=True) as session:
        raw = session.read_table("items_items").to_pylist()
        canonical = session.read_table("survey_responses").to_pylist()
    assert sorted(r["id"] for r in raw) == [r["id"] for r in RECORDS]
    assert {r["response_id"]: r["score"] for r in canonical} == {str(r["id"]): float(r["score"]) for r in RECORDS}


def test_an_incremental_sync_sends_the_cursor_in_its_format(tmp_path):
    source = kpihub.DeclarativeSource.from_file(write_spec(tmp_path, spec_text()))
    with FakeItems() as server:
        p = run(tmp_path, server, source, start_date="2026-03-03")
        assert p.sync().ok
        first = server.requests[0].query["since"]
        server.requests.clear()
        assert p.sync().ok
        second = server.requests[0].query["since"]
    assert first == "2026-03-03T00:00:00Z"  # start_date on a first sync
    assert second == max(r["updated"] for r in RECORDS)  # then the newest committed, in ISO with Z


def test_a_project_lists_a_declarative_file_and_syncs_it_with_no_python(tmp_path, monkeypatch, registry):
    reset_registry(registry)
    (tmp_path / "connectors").mkdir()
    write_spec(tmp_path / "connectors", spec_text())
    monkeypatch.chdir(tmp_path)
    with FakeItems() as server:
        (tmp_path / "kpihub.toml").write_text(
            '[project]\ndestination = "duckdb:///data.duckdb"\nconnectors = ["connectors/*.toml"]\n'
            f'[sources.items]\nbase_url = "{server.url}"\n'
        )
        monkeypatch.setenv("KPIHUB_ITEMS_TOKEN", "sekret-token")
        checked = CliRunner().invoke(cli, ["check"])
        result = CliRunner().invoke(cli, ["sync"])
        planned = CliRunner().invoke(cli, ["plan"])
    assert checked.exit_code == 0 and "connected" in checked.output, checked.output
    assert result.exit_code == 0, result.output
    assert "items.items" in result.output and "47" in result.output
    assert planned.exit_code == 0 and "items.items" in planned.output, planned.output


# -- bad files: one line naming the file, the stream and the key -------------------------------------


def load_error(tmp_path: Path, text: str) -> str:
    path = write_spec(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        kpihub.DeclarativeSource.from_file(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ('type = "cursor"', 'type = "cursr"', "streams.items.paginator.type: 'cursr' is not one of"),
        ('param = "cursor"', 'parm = "cursor"', "streams.items.paginator.parm: is not a known key"),
        ('path = "/items/cursor"\n', "", "streams.items.path: is required"),
        ('id = "int64"', 'id = "integer"', "streams.items.fields.id.type: input should be"),
        ('cursor_field = "updated"', 'cursor_field = "modified"', "streams.items: 'modified' is a key or cursor but not in fields"),
        ('token = "{token}"', 'token = "{tokn}"', "auth.token: {tokn} is not a setting"),
        ('path = "/items/cursor"', 'path = "/items/{token}"', "streams.items.path: the secret {token} may go only"),
        ('item = "\'nps\'"', 'item = "questoin"', "streams.items.canonical.columns.item: 'questoin' does not compile"),
        ('scale_max = "10"', 'scale_mx = "10"', "streams.items.canonical.columns.scale_mx: survey_responses has no"),
        ('item = "\'nps\'"\n', "", "streams.items.canonical.columns.item: is required by survey_responses"),
        ('table = "survey_responses"', 'table = "surveys"', "streams.items.canonical.table: 'surveys' is not a"),
        ('name = "items"', 'name = "Items!"', "source.name: string should match pattern"),
    ],
)
def test_a_bad_file_fails_in_one_line_naming_file_stream_and_key(tmp_path, old, new, expected):
    text = spec_text()
    assert old in text
    assert expected in load_error(tmp_path, text.replace(old, new, 1))


def test_not_toml_and_missing_files_are_one_line_errors(tmp_path):
    assert "not valid TOML" in load_error(tmp_path, "[source\nname=")
    with pytest.raises(ConfigError, match="cannot read the file"):
        kpihub.DeclarativeSource.from_file(tmp_path / "nope.toml")


def test_settings_of_a_declarative_source_are_validated_like_a_python_sources(tmp_path):
    from kpihub.testing import build_source_settings

    source = kpihub.DeclarativeSource.from_file(write_spec(tmp_path, spec_text()))
    with pytest.raises(ConfigError, match=r"setting 'token' is required .*KPIHUB_ITEMS_TOKEN"):
        build_source_settings("items", source.settings_class, {"base_url": "http://127.0.0.1:1"})
    settings = build_source_settings("items", source.settings_class, {"base_url": "http://x", "token": "tok-123"})
    assert settings.user == "me@example.com" and "tok-123" not in repr(settings)
    assert isinstance(settings.start_date, dt.date | type(None))


def demo_for_items(*, seed: int, scale: int) -> kpihub.DemoSpec:
    """The ``[source] demo`` function the test below names (this module is importable by pytest)."""
    return kpihub.DemoSpec(server=None, settings={"token": f"seed-{seed}-scale-{scale}"})


def test_a_declarative_source_offers_the_demo_its_file_names(tmp_path):
    plain = kpihub.DeclarativeSource.from_file(write_spec(tmp_path, spec_text()))
    assert plain.demo() is None
    text = spec_text().replace('title = "Items"', f'title = "Items"\ndemo = "{__name__}:demo_for_items"', 1)
    spec = kpihub.DeclarativeSource.from_file(write_spec(tmp_path, text)).demo(seed=3, scale=2)
    assert spec is not None and spec.settings == {"token": "seed-3-scale-2"}
    missing = text.replace(":demo_for_items", ":no_such_function")
    with pytest.raises(ConfigError, match=r"items\.toml: source\.demo: cannot load .*no_such_function"):
        kpihub.DeclarativeSource.from_file(write_spec(tmp_path, missing)).demo()
    assert "source.demo: string should match pattern" in load_error(tmp_path, text.replace(":demo_for_items", ""))
