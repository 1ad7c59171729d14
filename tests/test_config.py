"""Configuration loading: the shipped file, and errors naming file and dotted key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from callnowd.config import Config, ConfigError, load_config

ROOT = Path(__file__).parents[1]
SHIPPED = ROOT / "conf" / "callnow.toml"


def _keys(cls: type[Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for field in attrs.fields(cls):
        if field.metadata.get("skip"):
            continue
        name = f"{prefix}{field.name}"
        if isinstance(field.type, type) and attrs.has(field.type):
            keys |= _keys(field.type, f"{name}.")
        elif attrs.has(field.default.__class__):
            keys |= _keys(field.default.__class__, f"{name}.")
        else:
            keys.add(name)
    return keys


def _file_keys(table: dict[str, Any], leaves: set[str], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in leaves:
            keys |= _file_keys(value, leaves, f"{key}.")
        else:
            keys.add(key)
    return keys


class ShippedConfigTests(SynchronousTestCase):
    """conf/callnow.toml."""

    def test_loads_and_equals_defaults(self) -> None:
        """The shipped file loads and states exactly the defaults."""
        config = load_config(SHIPPED)
        self.assertEqual(attrs.evolve(config, path=Path()), Config(path=Path()))

    def test_documents_every_key(self) -> None:
        """Every configuration key appears in the shipped file, with a comment."""
        data = tomllib.loads(SHIPPED.read_text())
        self.assertEqual(_file_keys(data, _keys(Config)), _keys(Config))
        text = SHIPPED.read_text()
        for key in _keys(Config):
            line_index = next(
                i
                for i, line in enumerate(text.splitlines())
                if line.startswith(key.rsplit(".", 1)[1] + " =")
            )
            block = []
            for line in reversed(text.splitlines()[:line_index]):
                if not line.strip() or line.startswith("["):
                    break
                block.append(line)
            self.assertTrue(
                any(line.startswith("#") for line in block),
                f"{key} has no comment in its block",
            )


class ConfigErrorTests(SynchronousTestCase):
    """Each kind of mistake names the file and the key."""

    def load(self, text: str) -> ConfigError:
        path = Path(self.mktemp())
        path.write_text(text)
        error: ConfigError = self.assertRaises(ConfigError, load_config, path)
        self.assertTrue(str(error).startswith(f"{path}: "))
        return error

    def test_missing_file(self) -> None:
        """A missing file is an error naming it."""
        path = Path(self.mktemp())
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn(str(path), str(error))
        self.assertIn("cannot read", str(error))

    def test_syntax_error(self) -> None:
        """Invalid TOML says so, with the position."""
        error = self.load("[http]\nlisten = \n")
        self.assertIn("TOML syntax error", str(error))
        self.assertIn("line 2", str(error))

    def test_unknown_key(self) -> None:
        """An unknown key is named with its table."""
        self.assertEqual(self.load("[http]\nlisen = 'x'\n").key, "http.lisen")
        self.assertEqual(self.load("[htp]\n").key, "htp")

    def test_wrong_type(self) -> None:
        """A value of the wrong type names the key and the expected type."""
        error = self.load("[http]\nmax_body_bytes = 'big'\n")
        self.assertEqual(error.key, "http.max_body_bytes")
        self.assertIn("must be an integer", str(error))
        self.assertEqual(self.load("[http]\ntest_hooks = 1\n").key, "http.test_hooks")
        self.assertEqual(self.load("http = 3\n").key, "http")

    def test_bad_endpoint(self) -> None:
        """An endpoint string Twisted cannot parse is refused."""
        error = self.load("[http]\nlisten = 'tcp:notaport'\n")
        self.assertEqual(error.key, "http.listen")
        error = self.load("[http]\nlisten = 'carrier-pigeon:1'\n")
        self.assertIn("not a valid server endpoint", str(error))

    def test_bad_values(self) -> None:
        """Checks refuse out-of-range and malformed values."""
        cases = {
            "[phone]\ndefault_region = 'XX'\n": "phone.default_region",
            "[public]\ncaptcha_length = 2\n": "public.captcha_length",
            "[store]\nurl = 'mysql://x'\n": "store.url",
            "[http]\npublic_url = 'ftp://x'\n": "http.public_url",
            "[daemon]\ninstance_id = 'Has Space'\n": "daemon.instance_id",
            "[public]\none_step_window = 0\n": "public.one_step_window",
        }
        for text, key in cases.items():
            self.assertEqual(self.load(text).key, key, text)

    def test_test_hooks_need_loopback(self) -> None:
        """Test hooks are refused unless HTTP listens on loopback only."""
        error = self.load("[http]\nlisten = 'tcp:8080'\ntest_hooks = true\n")
        self.assertEqual(error.key, "http.test_hooks")
        path = Path(self.mktemp())
        path.write_text(
            "[http]\nlisten = 'tcp:0:interface=127.0.0.1'\ntest_hooks = true\n"
        )
        self.assertTrue(load_config(path).http.test_hooks)
