"""Dialplan text the simulator must understand, parsed like Asterisk does.

This module owns the pure parsers for strings that Asterisk itself re-parses:
application arguments (``__ast_app_separate_args``: commas, quotes, parentheses),
``Variable:`` headers of Originate (split on commas, so an injected comma would
set a second variable), caller ids (``"Name" <num>``), ``Dial()`` data
(``Tech/target[&...],timeout,options`` with ``L(ms)``), ``AGI()`` data
(``agi://host[:port]/script[?query],arg1,...``) and ``${VAR}`` expansion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

AGI_PORT = 4573


def separate_args(data: str, delimiter: str = ",") -> list[str]:
    """Split application data like ``AST_STANDARD_APP_ARGS`` with remove_chars=1.

    Delimiters inside ``"..."``, ``(...)`` or ``[...]`` do not split; ``"``
    quotes and ``\\`` escapes are consumed.

    Args:
        data: the raw application data.
        delimiter: the separating character.

    Returns:
        The arguments (an empty ``data`` gives ``[""]``, like Asterisk).
    """
    args: list[str] = []
    current: list[str] = []
    parens = brackets = 0
    quoted = escaped = False
    for char in data:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted:
            current.append(char)
        elif char == delimiter and parens == 0 and brackets == 0:
            args.append("".join(current))
            current = []
        else:
            if char == "(":
                parens += 1
            elif char == ")" and parens:
                parens -= 1
            elif char == "[":
                brackets += 1
            elif char == "]" and brackets:
                brackets -= 1
            current.append(char)
    args.append("".join(current))
    return args


def parse_variable_header(value: str) -> list[tuple[str, str]]:
    """The variables one Originate ``Variable:`` header sets.

    Asterisk splits the header value on commas (``man_do_variable_value``), so
    ``A=1,B=2`` sets two variables; pieces without ``=`` are ignored.

    Args:
        value: the header value.

    Returns:
        ``(name, value)`` pairs in order.
    """
    pairs: list[tuple[str, str]] = []
    for piece in separate_args(value):
        name, sep, var_value = piece.partition("=")
        if sep and name:
            pairs.append((name, var_value))
    return pairs


_CALLERID = re.compile(
    r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$'
)
_NUMBER_LIKE = re.compile(r"^[0-9+*#()\s.-]+$")


def parse_callerid(value: str) -> tuple[str, str]:
    """Split a caller id like ``ast_callerid_parse``.

    Args:
        value: e.g. ``"CallNow Mary" <5555555555>``, ``<5555>`` or ``5555``.

    Returns:
        ``(name, number)``; a missing part is the empty string.
    """
    match = _CALLERID.match(value)
    if match:
        name = (
            match.group("qname")
            if match.group("qname") is not None
            else match.group("name")
        )
        return (name or "").strip(), match.group("num").strip()
    value = value.strip()
    if _NUMBER_LIKE.match(value):
        return "", value
    return value.strip('"'), ""


@attrs.frozen
class DialTarget:
    """One ``Tech/resource`` of a Dial.

    Attributes:
        tech: e.g. ``Local`` or ``PJSIP``.
        resource: everything after the first ``/``, e.g. ``5555555555@pstn``.
    """

    tech: str
    resource: str

    @property
    def number(self) -> str:
        """The dialled number: the resource before ``@``, last ``/`` segment."""
        return self.resource.split("@", 1)[0].rsplit("/", 1)[-1]

    @property
    def context(self) -> str | None:
        """The part after ``@`` (a Local channel's context), if any."""
        _, sep, context = self.resource.partition("@")
        return context if sep else None

    @property
    def dial_string(self) -> str:
        """``Tech/resource`` as written."""
        return f"{self.tech}/{self.resource}"


@attrs.frozen
class DialRequest:
    """The parsed data of ``Dial(targets,timeout,options)``.

    Attributes:
        targets: the ``&``-separated destinations.
        timeout: ring timeout in seconds, None when empty (ring forever).
        options: option letter -> argument (None when the option has none).
    """

    targets: tuple[DialTarget, ...]
    timeout: float | None
    options: Mapping[str, str | None]

    @property
    def limit(self) -> float | None:
        """The ``L(x[:y[:z]])`` maximum call duration in seconds, if any."""
        argument = self.options.get("L")
        if not argument:
            return None
        first = argument.split(":", 1)[0]
        try:
            milliseconds = int(first)
        except ValueError:
            return None
        return milliseconds / 1000.0 if milliseconds > 0 else None


class DialSyntaxError(ValueError):
    """Dial data that Asterisk's Dial would refuse."""


def parse_dial_options(text: str) -> dict[str, str | None]:
    """Parse an option string like ``ab(1)L(60000:30000)`` (``ast_app_parse_options``).

    Args:
        text: the option letters, each optionally followed by ``(argument)``.

    Returns:
        Option letter -> argument or None.

    Raises:
        DialSyntaxError: an unterminated parenthesis.
    """
    options: dict[str, str | None] = {}
    index = 0
    while index < len(text):
        letter = text[index]
        index += 1
        argument: str | None = None
        if index < len(text) and text[index] == "(":
            end = text.find(")", index)
            if end < 0:
                raise DialSyntaxError(f"unterminated argument of option {letter!r}")
            argument = text[index + 1 : end]
            index = end + 1
        options[letter] = argument
    return options


def parse_dial_data(data: str) -> DialRequest:
    """Parse ``Dial()`` application data.

    Args:
        data: e.g. ``PJSIP/+15551234567@trunk,30,L(60000)``.

    Returns:
        The request.

    Raises:
        DialSyntaxError: no target, a target without ``/`` or a bad timeout.
    """
    args = separate_args(data)
    targets: list[DialTarget] = []
    for target in args[0].split("&"):
        tech, sep, resource = target.strip().partition("/")
        if not sep or not tech or not resource:
            raise DialSyntaxError(f"Dial target {target!r} is not Tech/resource")
        targets.append(DialTarget(tech, resource))
    timeout: float | None = None
    if len(args) > 1 and args[1].strip():
        try:
            timeout = float(args[1])
        except ValueError as e:
            raise DialSyntaxError(f"bad Dial timeout {args[1]!r}") from e
        if timeout <= 0:
            timeout = None
    options = parse_dial_options(args[2]) if len(args) > 2 else {}
    return DialRequest(targets=tuple(targets), timeout=timeout, options=options)


@attrs.frozen
class AgiTarget:
    """Where an ``AGI()`` call connects and what it sends.

    Attributes:
        request: the URL as written (``agi_request``).
        host: host to connect to.
        port: TCP port.
        network_script: path and query after ``host[:port]/`` (may be empty).
        args: the AGI arguments (``agi_arg_1``...).
    """

    request: str
    host: str
    port: int
    network_script: str
    args: tuple[str, ...]


class AgiUrlError(ValueError):
    """AGI data that is not a usable ``agi://`` URL."""


def parse_agi_data(data: str) -> AgiTarget:
    """Parse ``AGI()`` data: the URL then the arguments.

    Args:
        data: e.g. ``agi://127.0.0.1:4573/confirm,abc123``.

    Returns:
        The target.

    Raises:
        AgiUrlError: not an ``agi://`` URL or a bad port.
    """
    args = separate_args(data)
    url = args[0]
    if not url.startswith("agi://"):
        raise AgiUrlError(f"not a FastAGI URL: {url!r}")
    hostport, _, script = url[len("agi://") :].partition("/")
    host, port = hostport, AGI_PORT
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:])
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
        port = _port(port_text)
    if not host:
        raise AgiUrlError(f"no host in {url!r}")
    return AgiTarget(
        request=url, host=host, port=port, network_script=script, args=tuple(args[1:])
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError as e:
        raise AgiUrlError(f"bad port {text!r}") from e
    if not 0 < port < 65536:
        raise AgiUrlError(f"bad port {text!r}")
    return port


_VARIABLE_REFERENCE = re.compile(r"\$\{([^${}]+)\}")


def expand_variables(template: str, variables: Mapping[str, str]) -> str:
    """Substitute ``${NAME}`` from ``variables`` (unset names expand to "").

    Args:
        template: text with ``${NAME}`` references.
        variables: the channel variables.

    Returns:
        The expanded text.
    """
    return _VARIABLE_REFERENCE.sub(lambda m: variables.get(m.group(1), ""), template)
