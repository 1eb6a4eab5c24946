"""Settings: the project file ``kpihub.toml`` plus ``KPIHUB_*`` environment variables.

* Project settings live under ``[project]``; ``KPIHUB_<FIELD>`` overrides them.
* Each configured source lives under ``[sources.<id>]`` and is validated by
  its connector's :class:`SourceSettings` subclass; ``KPIHUB_<ID>_<FIELD>``
  overrides the file, so secrets can stay out of it.
* A validation error is one line naming the source, the field and where to set it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kpihub.errors import ConfigError
from kpihub.secrets import masked_uri, register_secret, register_uri_secrets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "PluginLoadSettings",
    "Project",
    "ProjectSettings",
    "SourceSettings",
    "load_project",
]

DEFAULT_PROJECT_FILE = "kpihub.toml"
S = TypeVar("S", bound="SourceSettings")


class _EnvironmentFirst(BaseSettings):
    """Settings where ``KPIHUB_*`` variables beat the project file (passed as init values)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


class SourceSettings(_EnvironmentFirst):
    """Base of every connector's settings. Subclass and add fields; secrets as ``SecretStr``.

    Values come from ``[sources.<id>]`` in kpihub.toml; environment variables
    ``KPIHUB_<ID>_<FIELD>`` take precedence.
    """

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False)

    #: The API root. Always configurable: proxies, regional endpoints and fakes in tests.
    base_url: str
    #: Earliest data to read on a first sync (default: everything the API has).
    start_date: date | None = None
    #: Proactive request budget per second shared by all streams (None: no limit).
    requests_per_second: float | None = None
    #: Attempts per request before giving up (429, 5xx, connection errors).
    max_attempts: int = Field(default=6, ge=1, le=20)
    #: Seconds for connect/read timeouts.
    timeout: float = Field(default=30.0, gt=0)
    #: Longest Retry-After (seconds) we are willing to sleep; longer fails the stream.
    max_retry_after: float = Field(default=300.0, ge=0)
    #: Streams of this source read at once (``Source.parallel_streams`` may lower it).
    max_parallel_streams: int = Field(default=2, ge=1, le=8)
    #: The project file's directory (set by :meth:`Project.source_settings`); ``None``: the working directory.
    _root: Path | None = PrivateAttr(default=None)

    def resolve_path(self, path: str | Path) -> Path:
        """A path from the project file: ``~`` expanded, a relative one joined to the project file's directory.

        Without a project file (settings built directly) a relative path stays relative to the
        working directory. Sources that read local files (kpihub-files) call this, so a sync run
        from cron in another directory reads the same files as one run next to ``kpihub.toml``.
        """
        p = Path(path).expanduser()
        return p if p.is_absolute() or self._root is None else self._root / p

    def secret_values(self) -> list[str]:
        """The plain values of every set ``SecretStr`` field, for redaction (never log them)."""
        return [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]


class ProjectSettings(_EnvironmentFirst):
    """The ``[project]`` table: where data goes and how KPIs are reported."""

    model_config = SettingsConfigDict(env_prefix="KPIHUB_", extra="forbid", case_sensitive=False)

    name: str = "kpihub"
    #: Destination URI: ``duckdb:///path.duckdb`` (default) or ``parquet:///dir``.
    destination: str = "duckdb:///kpihub.duckdb"
    #: Time zone in which KPI periods (days, weeks, months) are cut.
    timezone: str = "UTC"
    #: Reporting currency of money KPIs.
    currency: str | None = None
    #: Targets file (TOML or CSV) for the scorecard.
    targets: str | None = None
    #: Rows per durable write (and state checkpoint).
    chunk_rows: int = Field(default=50_000, ge=1)
    #: Configured sources synced at the same time (several accounts of one platform are several
    #: sources): their requests wait on the API, not on the CPU, so 8 overlap on 2 cores; each keeps
    #: its own rate budget, and the destination serializes commits.
    max_parallel_sources: int = Field(default=8, ge=1, le=32)
    #: Declarative source files (globs, relative to the project file): each declares a source type
    #: that ``[sources.<id>]`` tables can use, with no plugin to install (see docs/declarative.md).
    connectors: list[str] = Field(default_factory=list)
    #: A record that cannot be stored as its table's types (a value that does not parse, a type the
    #: table cannot widen to, a null primary key): ``fail`` the stream naming stream, record key and
    #: field; ``quarantine`` it to the ``_rejected`` table with the reason and load the rest; or
    #: ``null`` the value. Unset: what each stream declares (``fail`` unless a connector says otherwise).
    on_bad_record: Literal["fail", "quarantine", "null"] | None = None
    #: Gross margin as a fraction (0.75 for 75 %): the share of revenue left after the cost of what was
    #: sold. KPIs with a ``gross_margin`` parameter use it (CAC payback); unset, theirs (1: revenue payback).
    gross_margin: float | None = None
    #: VAT rate as a fraction (0.25 for 25 %) in the prices of orders whose source reports no tax amount
    #: (``orders.tax_amount`` null): KPIs with a ``vat_rate`` parameter take it out of them (ROAS ex VAT).
    vat_rate: float | None = None

    @field_validator("vat_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        # 25 is a percentage, a bool would pass as 1.0: refused, saying how to write it.
        number = None if isinstance(value, bool) else _number(value)
        if value is not None and (number is None or not 0 <= number < 1):
            raise ValueError(f"must be a fraction from 0 up to 1 (0.25 for 25 % VAT), not {value!r}")
        return number

    @field_validator("gross_margin", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        # A bool would pass as 1.0, and 75 is a percentage: both refused, saying how to write it.
        number = None if isinstance(value, bool) else _number(value)
        if value is not None and (number is None or not 0 < number <= 1):
            raise ValueError(f"must be a fraction above 0 and at most 1 (0.75 for a 75 % margin), not {value!r}")
        return number

    def kpi_parameters(self) -> dict[str, float]:
        """The numbers KPIs' parameters of the same name take (those the project sets)."""
        given = {"gross_margin": self.gross_margin, "vat_rate": self.vat_rate}
        return {name: value for name, value in given.items() if value is not None}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("destination")
    @classmethod
    def _hide_credentials(cls, value: str) -> str:
        register_uri_secrets(value)  # a database password or an object store key in the URI
        return value

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, masked_uri(value) if name == "destination" else value


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a number or a numeral (from the environment), else None."""
    try:
        return float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None


class PluginLoadSettings(BaseSettings):
    """Environment switches for plugin loading (``KPIHUB_LOAD_PLUGINS`` …)."""

    model_config = SettingsConfigDict(env_prefix="KPIHUB_", extra="ignore")

    #: Comma-separated entry-point names to load; unset loads all.
    load_plugins: str | None = None
    #: Comma-separated entry-point names never to load.
    disable_plugins: str | None = None
    #: Log every hook call (for plugin authors).
    trace_plugins: bool = False


class _SourceEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str | None = None


@dataclass
class Project:
    """A loaded project file: project settings and the raw source tables."""

    path: Path | None
    settings: ProjectSettings
    #: As written, secrets included (not in the repr): validate with :meth:`source_settings`.
    sources: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    #: ``[kpis.<id>]`` tables: KPIs defined in the project file (see kpihub.kpis.project).
    kpis: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The directory relative paths resolve against: the project file's, else the working directory."""
        return self.path.parent if self.path else Path.cwd()

    def source_type(self, source_id: str) -> str:
        """The plugin source a configured id uses: its ``type`` key, else the id itself.

        ``[sources.hubspot_eu] type = "hubspot"`` configures a second HubSpot account.
        """
        entry = self.sources.get(source_id, {})
        return str(entry.get("type") or source_id)

    def source_settings(self, source_id: str, settings_class: type[S]) -> S:
        """Validate ``[sources.<source_id>]`` plus its environment variables."""
        values = {k: v for k, v in self.sources.get(source_id, {}).items() if k != "type"}
        return build_source_settings(source_id, settings_class, values, where=self._where(source_id), root=self.root)

    def resolve(self, path: str) -> Path:
        """Resolve a path from the project file relative to the project directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def _where(self, source_id: str) -> str:
        name = self.path.name if self.path else DEFAULT_PROJECT_FILE
        return f"[sources.{source_id}] in {name}"


def env_prefix(source_id: str) -> str:
    return f"KPIHUB_{source_id.upper().replace('-', '_')}_"


def build_source_settings(
    source_id: str,
    settings_class: type[S],
    values: Mapping[str, Any],
    *,
    where: str | None = None,
    root: Path | None = None,
) -> S:
    """Instantiate ``settings_class`` from ``values`` and ``KPIHUB_<ID>_*``; one-line errors.

    ``root`` is the directory :meth:`SourceSettings.resolve_path` resolves relative paths against.
    """
    prefix = env_prefix(source_id)
    try:
        settings = settings_class(_env_prefix=prefix, **values)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        field_name = ".".join(str(p) for p in err["loc"]) or "?"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known setting"
        else:
            msg = msg[0].lower() + msg[1:]
        env = f"{prefix}{field_name.split('.')[0].upper()}"
        raise ConfigError(
            f"source {source_id!r}: setting {field_name!r} {msg} (set it in {where or 'kpihub.toml'} or {env})",
            source=source_id,
            field=field_name,
        ) from None
    for secret in settings.secret_values():
        register_secret(secret)
    settings._root = root
    return settings


def find_project_file(start: Path | None = None) -> Path | None:
    """The project file: ``$KPIHUB_PROJECT``, else ``kpihub.toml`` in the cwd or a parent."""
    explicit = os.environ.get("KPIHUB_PROJECT")
    if explicit:
        return Path(explicit)
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / DEFAULT_PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def load_project(path: str | Path | None = None, *, required: bool = False) -> Project:
    """Load ``kpihub.toml`` (or ``path``); without a file, defaults plus environment."""
    file = Path(path) if path else find_project_file()
    data: dict[str, Any] = {}
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"project file {str(file)!r} does not exist")
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: not UTF-8 text") from None
    elif required:
        raise ConfigError("no kpihub.toml here or in a parent directory (run `kpihub init`)")
    unknown = set(data) - {"project", "sources", "kpis"}
    if unknown:
        raise ConfigError(
            f"{file}: unknown table [{sorted(unknown)[0]}] (expected [project], [sources.<id>] and [kpis.<id>])"
        )
    project_table = data.get("project", {})
    sources = data.get("sources", {})
    if not isinstance(project_table, dict) or not isinstance(sources, dict):
        raise ConfigError(f"{file}: [project] and [sources] must be tables")
    try:
        settings = ProjectSettings(**project_table)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_name = ".".join(str(p) for p in err["loc"])
        msg = "is not a known setting" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        env_name = f"KPIHUB_{field_name.upper()}"
        if env_name in os.environ:  # the environment wins over the file: name where the value came from
            raise ConfigError(f"environment variable {env_name}: {msg}", field=field_name) from None
        raise ConfigError(f"{file or 'environment'}: [project] {field_name!r} {msg}") from None
    for source_id, entry in sources.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{file}: [sources.{source_id}] must be a table")
        _SourceEntry.model_validate(entry)
    kpis = data.get("kpis", {})
    if not isinstance(kpis, dict):
        raise ConfigError(f"{file}: [kpis] must hold [kpis.<id>] tables")
    return Project(path=file, settings=settings, sources={k: dict(v) for k, v in sources.items()}, kpis=dict(kpis))
