"""The AGI command table of the simulator: names, argument counts, usage text.

This module owns how the simulated res_agi recognises a command line (the
longest case-insensitive match of its leading words), which argument counts
each command accepts (a wrong count gives the 520 usage block), the usage
text of that block, and which commands still run on a dead channel.
"""

from __future__ import annotations

# name -> (min argc, max argc or None), argc counting every word like res_agi.
_ARITY: dict[str, tuple[int, int | None]] = {
    "answer": (1, 1),
    "noop": (1, None),
    "verbose": (2, 3),
    "channel status": (2, 3),
    "get variable": (3, 3),
    "get full variable": (4, 5),
    "set variable": (4, 4),
    "wait for digit": (4, 4),
    "stream file": (4, 5),
    "say digits": (4, 4),
    "get data": (3, 5),
    "hangup": (1, 2),
    "exec": (2, None),
}

USAGE: dict[str, str] = {
    "answer": " Usage: ANSWER\n\tAnswers channel if not already in answer state.",
    "noop": " Usage: NOOP\n\tDoes nothing.",
    "verbose": " Usage: VERBOSE <message> <level>\n\tLogs a message to the console.",
    "channel status": " Usage: CHANNEL STATUS [<channelname>]\n\tReturns the channel state.",
    "get variable": " Usage: GET VARIABLE <variablename>\n\tReturns 0 if the variable"
    " is not set, 1 and the value in parentheses if it is.",
    "get full variable": " Usage: GET FULL VARIABLE <expression> [<channelname>]\n"
    "\tEvaluates an expression with variables and functions.",
    "set variable": " Usage: SET VARIABLE <variablename> <value>\n\tSets a channel variable.",
    "wait for digit": " Usage: WAIT FOR DIGIT <timeout>\n\tWaits up to timeout"
    " milliseconds for channel to receive a DTMF digit.\n\tUse -1 to wait forever.",
    "stream file": " Usage: STREAM FILE <filename> <escape_digits> [<sample offset>]\n"
    "\tSends audio file on channel, interruptible by the escape digits.",
    "say digits": " Usage: SAY DIGITS <number> <escape_digits>\n\tSays the given digit string.",
    "get data": " Usage: GET DATA <file to be streamed> [<timeout>] [<maxdigits>]\n"
    "\tStream the given file, and receive DTMF data.",
    "hangup": " Usage: HANGUP [<channelname>]\n\tHangs up the current channel.",
    "exec": " Usage: EXEC <application> <options>\n\tExecutes application with options.",
}

# Commands registered with dead=1 in res_agi's commands[] (of those simulated).
DEAD_SAFE: frozenset[str] = frozenset(
    {"noop", "verbose", "get variable", "get full variable", "set variable", "exec"}
)

_BY_WORDS = sorted(
    ((tuple(name.upper().split()), name) for name in _ARITY),
    key=lambda item: -len(item[0]),
)


def match_command(words: list[str]) -> tuple[str, bool] | None:
    """Find the command of a tokenised line.

    Args:
        words: the words of the line as res_agi tokenises them.

    Returns:
        ``(name, argument_count_ok)``, or None for an unknown command (510).
    """
    upper = [word.upper() for word in words]
    for key, name in _BY_WORDS:
        if tuple(upper[: len(key)]) == key:
            low, high = _ARITY[name]
            argc = len(words)
            return name, argc >= low and (high is None or argc <= high)
    return None
