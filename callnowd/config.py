"""Configuration: ``conf/callnow.toml`` parsed into frozen attrs, validated completely.

Every problem is a :class:`ConfigError` naming the file and the dotted key, raised
before the reactor starts. Field checks live in each field's ``metadata["check"]``;
the loader (:func:`load_config`) walks the classes generically, so a new key is one
attrs field with a default and, where needed, a check.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs

from callnowd import checks
from callnowd.limits.destination_policy import DEFAULT_REFUSED_TYPES
from callnowd.limits.settings import LimitSettings


class ConfigError(Exception):
    """A configuration problem, naming the file and the dotted key."""

    def __init__(self, path: Path, key: str, problem: str) -> None:
        where = f"[{key}] " if key else ""
        super().__init__(f"{path}: {where}{problem}")
        self.path, self.key, self.problem = path, key, problem


def _field(default: Any, check: Callable[[Any], None] | None = None, **kw: Any) -> Any:
    return attrs.field(default=default, metadata={"check": check}, **kw)


@attrs.frozen
class DaemonConfig:
    """Identity of this daemon among several."""

    # Short id carried in AMI ActionIDs and ChannelIds; random per start when empty.
    instance_id: str = _field("", checks.instance_id)


@attrs.frozen
class HttpConfig:
    """The public web server."""

    listen: str = _field("tcp:8080:interface=127.0.0.1", checks.server_endpoint)
    public_url: str = _field("http://127.0.0.1:8080", checks.http_url)
    max_body_bytes: int = _field(16384, checks.positive)
    trust_forwarded_for: bool = False
    test_hooks: bool = False


@attrs.frozen
class StoreConfig:
    """Where requests, extensions and preferences are kept."""

    url: str = _field("sqlite:var/callnow.sqlite3", checks.store_url)


@attrs.frozen
class PhoneConfig:
    """How visitors' numbers are read."""

    default_region: str = _field("US", checks.region)


@attrs.frozen
class PublicConfig:
    """The public CallNow pages."""

    secret_file: str = _field("var/secret.key", checks.non_empty)
    one_step_window: int = _field(600, checks.positive)
    captcha_ttl: int = _field(300, checks.positive)
    captcha_length: int = _field(5, checks.captcha_length)
    status_refresh: int = _field(3, checks.positive)


@attrs.frozen
class AsteriskConfig:
    """How callnowd reaches Asterisk (AMI) and how Asterisk reaches it (FastAGI)."""

    mode: Literal["simulator", "ami"] = "simulator"
    ami_endpoint: str = _field("tcp:host=127.0.0.1:port=5038", checks.client_endpoint)
    username: str = _field("callnowd", checks.ami_word)
    secret: str = attrs.field(default="", repr=False)
    auth: Literal["md5", "plain"] = "md5"
    action_timeout: float = _field(10.0, checks.positive)
    ping_interval: float = _field(20.0, checks.positive)
    agi_listen: str = _field("tcp:4573:interface=127.0.0.1", checks.server_endpoint)
    agi_url: str = _field("", checks.agi_url)
    agi_allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")
    owner_context: str = _field("callnow-owner", checks.ami_word)
    owner_exten: str = _field("s", checks.ami_word)
    owner_priority: int = _field(1, checks.positive)
    originate_application: bool = False
    ring_timeout: int = _field(30, checks.positive)
    user_event_visitor: bool = False
    hint_context: str = _field("default", checks.ami_word)


@attrs.frozen
class CallsConfig:
    """Calling the visitor back, and the owner's prompts."""

    trunk: str = _field("PJSIP/{e164}@trunk", checks.trunk)
    visitor_ring_timeout: int = _field(30, checks.positive)
    max_call_seconds: int = _field(1800, checks.positive)
    connect_wait: float = _field(10.0, checks.positive)
    max_in_flight: int = _field(50, checks.positive)
    max_in_flight_per_extension: int = _field(2, checks.positive)
    prompt_incoming: str = _field("callnow/incoming", checks.sound)
    prompt_choice: str = _field("callnow/choice", checks.sound)
    prompt_declined: str = _field("callnow/declined", checks.sound)
    digit_timeout: int = _field(5, checks.positive)


@attrs.frozen
class SimulatorConfig:
    """The built-in Asterisk simulator (``asterisk.mode = "simulator"``)."""

    ami_listen: str = _field("tcp:0:interface=127.0.0.1", checks.server_endpoint)
    owners: dict[str, str] = _field(
        attrs.Factory(lambda: {"SIM/demo": "answer digit=1 digit_delay=1.5"}),
        checks.owner_scripts,
    )
    visitors: dict[str, str] = _field(attrs.Factory(dict), checks.visitor_scripts)
    default_visitor: str = _field("answer talk_seconds=4", checks.visitor_script)


@attrs.frozen
class DestinationsConfig:
    """Which numbers may be called back (THREATS.md §1)."""

    allowed_regions: tuple[str, ...] = _field((), checks.regions)
    refused_types: tuple[str, ...] = _field(DEFAULT_REFUSED_TYPES, checks.number_types)
    blocked_prefixes: tuple[str, ...] = _field((), checks.prefixes)


@attrs.frozen
class MetricsConfig:
    """The Prometheus endpoint."""

    listen: str = _field("tcp:9108:interface=127.0.0.1", checks.server_endpoint)


@attrs.frozen
class Config:
    """The whole daemon configuration."""

    path: Path = attrs.field(default=Path("conf/callnow.toml"), metadata={"skip": True})
    daemon: DaemonConfig = DaemonConfig()
    http: HttpConfig = HttpConfig()
    store: StoreConfig = StoreConfig()
    phone: PhoneConfig = PhoneConfig()
    public: PublicConfig = PublicConfig()
    asterisk: AsteriskConfig = AsteriskConfig()
    calls: CallsConfig = CallsConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    metrics: MetricsConfig = MetricsConfig()
    destinations: DestinationsConfig = DestinationsConfig()
    limits: LimitSettings = LimitSettings()


T = TypeVar("T")
_LOOPBACK_RE = re.compile(r"interface=(127\.[0-9.]+|\\?:\\?:1)(:|$)")


def load_config(path: Path) -> Config:
    """Read and validate a TOML configuration file.

    Args:
        path: the file to read.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid TOML, has an
            unknown key, a value of the wrong type, or a value its check refuses.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"TOML syntax error: {e}") from e
    config = config_from_mapping(Config, data, path)
    if config.http.test_hooks and not _LOOPBACK_RE.search(config.http.listen):
        raise ConfigError(
            path,
            "http.test_hooks",
            "can only be on when http.listen is bound to the loopback interface"
            " (interface=127.0.0.1 or interface=::1)",
        )
    if config.asterisk.mode == "ami" and not config.asterisk.secret:
        raise ConfigError(
            path, "asterisk.secret", 'is required when asterisk.mode = "ami"'
        )
    return attrs.evolve(config, path=path)


def config_from_mapping(cls: type[T], data: Mapping[str, Any], path: Path) -> T:
    """Build the attrs class ``cls`` from parsed TOML, naming any bad key.

    Args:
        cls: an attrs class whose fields are str, int, float, bool, Literal,
            tuple[str, ...] or nested attrs classes.
        data: the parsed table.
        path: the file, for error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: unknown key, wrong type or refused value.
    """
    return _build(cls, data, path, "")


def _build(cls: type[T], data: Mapping[str, Any], path: Path, prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls) if not f.metadata.get("skip")}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(path, _join(prefix, key), f"unknown key (known: {known})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            continue
        key = _join(prefix, name)
        value = _convert(hints[name], data[name], path, key)
        check = field.metadata.get("check")
        if check is not None:
            try:
                check(value)
            except ValueError as e:
                raise ConfigError(path, key, str(e)) from e
        values[name] = value
    return cls(**values)


def _convert(hint: Any, value: Any, path: Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    if attrs.has(hint):
        if not isinstance(value, dict):
            raise ConfigError(path, key, f"must be a table, not {_kind(value)}")
        return _build(hint, value, path, key)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(path, key, f"must be one of {choices}, not {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, key, f"must be a table, not {_kind(value)}")
        for name, item in value.items():
            if not isinstance(item, str):
                raise ConfigError(
                    path, f"{key}.{name}", f"must be a string, not {_kind(item)}"
                )
        return dict(value)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise ConfigError(path, key, f"must be an array, not {_kind(value)}")
        return tuple(
            _convert(item, v, path, f"{key}[{i}]") for i, v in enumerate(value)
        )
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unsupported config type {hint!r}")  # pragma: no cover
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, key, f"must be true or false, not {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, key, f"must be an integer, not {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, key, f"must be a number, not {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, key, f"must be a string, not {_kind(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r}")  # pragma: no cover


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def default_config_path() -> Path:
    """The config file used when none is given: ``$CALLNOW_CONFIG`` or the conf/ one."""
    return Path(os.environ.get("CALLNOW_CONFIG", "conf/callnow.toml"))
