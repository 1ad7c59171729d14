"""The real daemon, provisioned with callnowctl and driven over HTTP."""

from __future__ import annotations

import http.client
import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import BIN, Daemon

FORM = {"content-type": "application/x-www-form-urlencoded"}


def provision(daemon: Daemon, *extra: str) -> str:
    """Add extension 001*002 with CallNow ID john and the given preference flags."""
    result = daemon.ctl(
        "extension",
        "add",
        "001*002",
        "--name",
        "John Doe",
        "--external",
        "+12125550100",
        "--dial",
        "PJSIP/001002",
        "--timezone",
        "America/New_York",
        "--callnow-id",
        "john",
    )
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8080/callnow/john" in result.stdout
    assert "http://127.0.0.1:8080/callnow/index.php?call=john" in result.stdout
    if extra:
        result = daemon.ctl("callnow", "set", "001*002", *extra)
        assert result.returncode == 0, result.stderr
    return "john"


def open_form(
    daemon: Daemon, path: str = "/callnow/john"
) -> tuple[str, str, str | None]:
    code, headers, body = daemon.request("GET", path)
    assert code == 200
    cookie = headers["set-cookie"].split(";", 1)[0]
    text = body.decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', text)
    captcha = re.search(r'name="captcha_id" value="([^"]+)"', text)
    assert csrf is not None
    return cookie, csrf.group(1), captcha.group(1) if captcha else None


HOSTILE = {
    "CR": "Mary\rAction: Originate",
    "LF": "Mary\nX",
    "NUL": "Mary\x00",
    "line separator": "Mary\u2028",
    "bidi": "\u202eMary",
    "comma": "Mary,X=1",
    "quote": 'Mary"',
    "script": "<script>alert(1)</script>",
    "10 kB": "M" * 10240,
}


class DaemonCase(SynchronousTestCase):
    """Starts real daemons in temporary directories and stops them afterwards."""

    def workdir(self) -> Path:
        path = Path(self.mktemp()).absolute()
        path.mkdir(parents=True)
        return path

    def start_daemon(self) -> Daemon:
        daemon = Daemon(self.workdir())
        daemon.start()
        self.addCleanup(daemon.stop)
        return daemon


class DaemonTests(DaemonCase):
    """The daemon's pages, CLI and configuration, end to end."""

    def test_form_captcha_post_and_status(self) -> None:
        """Form GET, CAPTCHA-protected POST, then the status page in HTML and JSON."""
        daemon = self.start_daemon()
        provision(daemon, "--captcha", "yes", "--show-name", "yes")
        for path in ("/callnow/john", "/callnow/index.php?call=john"):
            code, headers, body = daemon.request("GET", path)
            assert code == 200
            assert b"John Doe" in body
            assert headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["referrer-policy"] == "no-referrer"
        cookie, csrf, captcha_id = open_form(daemon)
        assert captcha_id is not None
        code, headers, image = daemon.request("GET", f"/captcha/{captcha_id}.png")
        assert (code, headers["content-type"], image[:4]) == (
            200,
            "image/png",
            b"\x89PNG",
        )
        code, _, answer = daemon.request("GET", f"/_test/captcha/{captcha_id}")
        assert code == 200
        fields = {
            "csrf": csrf,
            "captcha_id": captcha_id,
            "captcha": answer.decode(),
            "phone": "+1 212 555 0123",
            "name": "Mary",
        }
        code, headers, _ = daemon.request(
            "POST",
            "/callnow/john",
            urlencode(fields).encode(),
            {**FORM, "cookie": cookie},
        )
        assert code == 303, headers
        status_url = headers["location"]
        code, _, body = daemon.request("GET", status_url)
        assert code == 200 and b"Your call request" in body
        code, headers, body = daemon.request(
            "GET", status_url, headers={"accept": "application/json"}
        )
        assert code == 200 and headers["content-type"] == "application/json"
        document = json.loads(body)
        # The request was stored as received, then dispatched (PJSIP/001002 is not a
        # scripted phone of the simulator, so that call fails: the page says so).
        assert document["events"][0]["state"] == "received"
        assert document["phone"] == "+1212•••0123"

    def test_one_step_link(self) -> None:
        """The one-step link creates one request; HEAD and repeats create nothing more."""
        daemon = self.start_daemon()
        provision(daemon, "--captcha", "no")
        url = "/callnow/index.php?call=john&myname=Mary&phone=%2B12125550123"
        code, _, _ = daemon.request("HEAD", url)
        assert code == 200
        code, headers, _ = daemon.request("GET", url)
        assert code == 303
        first = headers["location"]
        code, headers, _ = daemon.request("GET", url)
        assert headers["location"] == first
        code, _, body = daemon.request(
            "GET", first, headers={"accept": "application/json"}
        )
        assert json.loads(body)["events"][0]["state"] == "received"
        # Names and numbers are not in the access log.
        daemon.stop()
        log = json.dumps(daemon.events)
        assert "12125550123" not in log and "Mary" not in log

    def test_captcha_link_shows_form(self) -> None:
        """With image validation on, the one-step link only pre-fills the form."""
        daemon = self.start_daemon()
        provision(daemon, "--captcha", "yes")
        code, _, body = daemon.request(
            "GET", "/callnow/index.php?call=john&myname=Mary&phone=%2B12125550123"
        )
        assert code == 200 and b'value="Mary"' in body
        result = daemon.ctl("extension", "show", "001*002")
        assert result.returncode == 0

    def test_hostile_inputs_over_the_wire(self) -> None:
        """Each hostile value gets a 4xx with a message; nothing is stored; still up."""
        daemon = self.start_daemon()
        provision(daemon, "--captcha", "no")
        for label, value in HOSTILE.items():
            for field in ("name", "phone"):
                cookie, csrf, _ = open_form(daemon)
                fields = {
                    "csrf": csrf,
                    "phone": "+12125550123",
                    "name": "Mary",
                    field: value,
                }
                code, _, body = daemon.request(
                    "POST",
                    "/callnow/john",
                    urlencode(fields).encode(),
                    {**FORM, "cookie": cookie},
                )
                assert code == 400, (label, field)
                assert f'id="{field}-error"'.encode() in body, (label, field)
                query = {"call": "john", "myname": "Mary", "phone": "+12125550123"}
                query["myname" if field == "name" else "phone"] = value
                code, _, _ = daemon.request(
                    "GET", "/callnow/index.php?" + urlencode(query)
                )
                assert code == 400, (label, field)
        code, _, body = daemon.request(
            "GET", "/callnow/index.php?call=john&myname=%FF&phone=%2B12125550123"
        )
        assert code == 400 and b"not valid UTF-8" in body
        code, _, body = daemon.request("GET", "/callnow/%FF%FE")
        assert code == 400 and b"not valid UTF-8" in body
        cookie, csrf, _ = open_form(daemon)
        big = b"phone=" + b"1" * (2 * 1024 * 1024)
        code, _, body = daemon.request(
            "POST", "/callnow/john", big, {**FORM, "cookie": cookie}
        )
        assert code == 413 and b"too large" in body
        code, _, _ = daemon.request(
            "POST",
            "/callnow/john",
            b"{}",
            {"content-type": "application/json", "cookie": cookie},
        )
        assert code == 415
        assert daemon.alive()
        # Refused before routing: no traceback in the log for any of this.
        assert not [e for e in daemon.events if e.get("log_failure")], [
            e.get("log_format") for e in daemon.events if e.get("log_failure")
        ]
        assert daemon.request("GET", "/healthz")[0] == 200
        daemon.stop()
        result = daemon.ctl("extension", "list")
        assert result.returncode == 0
        with sqlite3.connect(daemon.workdir / "callnow.sqlite3") as db:
            assert db.execute("select count(*) from call_requests").fetchone() == (0,)

    def test_uniform_unavailable(self) -> None:
        """Unknown, disabled and reject-all links answer the same status and body."""
        daemon = self.start_daemon()
        provision(daemon)
        assert (
            daemon.ctl(
                "extension",
                "add",
                "200",
                "--name",
                "Off",
                "--external",
                "+12125550101",
                "--dial",
                "PJSIP/200",
                "--callnow-id",
                "off",
            ).returncode
            == 0
        )
        assert daemon.ctl("callnow", "set", "200", "--enabled", "no").returncode == 0
        assert (
            daemon.ctl("callnow", "set", "001*002", "--reject-all", "yes").returncode
            == 0
        )
        answers = {
            daemon.request("GET", f"/callnow/{cid}")[::2]
            for cid in ("nobody", "off", "john")
        }
        assert len(answers) == 1
        assert answers.pop()[0] == 404

    def test_restart_keeps_requests(self) -> None:
        """Requests stored before a restart are there after it."""
        tmp_path = self.workdir()
        daemon = Daemon(tmp_path)
        daemon.start()
        try:
            provision(daemon, "--captcha", "no")
            _, headers, _ = daemon.request(
                "GET", "/callnow/index.php?call=john&myname=Mary&phone=%2B12125550123"
            )
            status_url = headers["location"]
            # twistd re-raises the SIGTERM it handled, after a clean shutdown.
            assert daemon.stop() in (0, -signal.SIGTERM)
            daemon.start()
            # A request in flight when the daemon stopped is reconciled after the
            # restart (its channel is gone): it ends, and is never dialled again.
            deadline = time.monotonic() + 20
            while True:
                code, _, body = daemon.request(
                    "GET", status_url, headers={"accept": "application/json"}
                )
                document = json.loads(body)
                if document["final"] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert code == 200 and document["events"][0]["state"] == "received"
            assert document["final"], document
            ringing = [e for e in document["events"] if e["state"] == "ringing_owner"]
            assert len(ringing) <= 1
        finally:
            daemon.stop()

    def test_readyz_and_metrics(self) -> None:
        """/readyz reports store and AMI; /metrics counts requests and refusals."""
        daemon = self.start_daemon()
        provision(daemon, "--captcha", "no")
        deadline = time.monotonic() + 20
        while True:
            code, _, body = daemon.request("GET", "/readyz")
            checks = json.loads(body)["checks"]
            if code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(
            (code, checks), (200, {"store": "ok", "ami": "ok", "limits": "in-process"})
        )
        daemon.request(
            "GET", "/callnow/index.php?call=john&myname=Mary&phone=%2B12125550123"
        )
        daemon.request("GET", "/callnow/nobody")
        connection = http.client.HTTPConnection(
            "127.0.0.1", daemon.ports["Metrics"], timeout=10
        )
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
        self.assertIn('callnow_requests_total{source="one_step"} 1.0', text)
        self.assertIn('callnow_refusals_total{reason="unavailable"} 1.0', text)
        self.assertIn("callnow_ami_connected 1.0", text)
        self.assertIn(
            'callnow_request_transitions_total{reason="",state="ringing_owner"} 1.0',
            text,
        )

    def test_bad_config_exits_before_start(self) -> None:
        """Twistd exits non-zero with one line naming the file and the key."""
        tmp_path = self.workdir()
        cases = [
            ("[http]\nlisten = 'tcp:nope'\n", "[http.listen]"),
            ("[http]\nlisen = 1\n", "[http.lisen]"),
            ("[store]\nurl = 3\n", "[store.url]"),
            ("[asterisk]\nmode = 'ami'\n", "[asterisk.secret]"),
            ("[calls]\ntrunk = 'PJSIP/{e164},evil'\n", "[calls.trunk]"),
            ("[http\n", "TOML syntax error"),
        ]
        for config, key in cases:
            path = tmp_path / "bad.toml"
            path.write_text(config)
            result = subprocess.run(
                [
                    str(BIN / "twistd"),
                    "-n",
                    "--pidfile=",
                    "callnow",
                    "--config",
                    str(path),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=tmp_path,
            )
            assert result.returncode != 0
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert str(path) in lines[0] and key in lines[0]
            assert not (tmp_path / "var").exists()

    def test_missing_config_file(self) -> None:
        """A missing config file is named in the one-line error."""
        tmp_path = self.workdir()
        result = subprocess.run(
            [
                str(BIN / "twistd"),
                "-n",
                "--pidfile=",
                "callnow",
                "--config",
                str(tmp_path / "nope.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0 and "nope.toml" in result.stderr

    def test_callnowctl_errors(self) -> None:
        """Callnowctl says what is wrong and exits non-zero."""
        daemon = self.start_daemon()
        provision(daemon)

        def add(
            number: str = "300",
            external: str = "+12125550100",
            dial: str = "PJSIP/1",
            *extra: str,
        ) -> tuple[str, ...]:
            return ("extension", "add", number, "--name", "X", "--external",
                    external, "--dial", dial, *extra)  # fmt: skip

        cases = [
            (("extension", "show", "999"), "no extension 999"),
            (add("001*002"), "exists already"),
            (add("300", "+12125550100", "PJSIP/1", "--callnow-id", "john"), "is taken"),
            (add(external="12"), "not a valid number"),
            (add(dial="PJSIP/1,evil"), "not a valid dial string"),
            (
                add("300", "+12125550100", "PJSIP/1", "--timezone", "Mars/Base"),
                "IANA",
            ),
            (
                ("callnow", "set", "001*002", "--id", "bad id!"),
                "not a valid CallNow ID",
            ),
            (("callnow", "set", "001*002", "--message", "x" * 501), "at most 500"),
            (
                ("callnow", "set", "001*002", "--available-only-in-windows", "yes"),
                "needs at least one --window",
            ),
            (("callnow", "set", "001*002", "--window", "mon 25:00-26:00"), "HH:MM"),
        ]
        for args, text in cases:
            result = daemon.ctl(*args)
            assert result.returncode != 0, args
            assert text in result.stderr, (args, result.stderr)
        # Changes made while the daemon runs are seen at once.
        assert (
            daemon.ctl("callnow", "set", "001*002", "--message", "Back at 3").returncode
            == 0
        )
        assert b"Back at 3" in daemon.request("GET", "/callnow/john")[2]
