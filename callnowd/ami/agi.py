"""Public FastAGI codec API (sans-IO), for the daemon's server and the simulator.

Owns nothing but the names: the types, the server-side parser and the command
encoder live in :mod:`callnowd.ami.agi_codec`; what Asterisk writes and reads
(used by the simulator) lives in :mod:`callnowd.ami.agi_client`.
"""

from callnowd.ami.agi_client import AgiClientParser, encode_environment, encode_result
from callnowd.ami.agi_codec import (
    HANGUP_LINE,
    MAX_COMMAND_LINE,
    MAX_COMMAND_WORDS,
    AgiEncodingError,
    AgiEnvironment,
    AgiError,
    AgiHangupNotice,
    AgiProtocolError,
    AgiResult,
    AgiServerEvent,
    AgiServerParser,
    encode_command,
    parse_result_line,
    split_command,
)

__all__ = [
    "HANGUP_LINE",
    "MAX_COMMAND_LINE",
    "MAX_COMMAND_WORDS",
    "AgiClientParser",
    "AgiEncodingError",
    "AgiEnvironment",
    "AgiError",
    "AgiHangupNotice",
    "AgiProtocolError",
    "AgiResult",
    "AgiServerEvent",
    "AgiServerParser",
    "encode_command",
    "encode_environment",
    "encode_result",
    "parse_result_line",
    "split_command",
]
