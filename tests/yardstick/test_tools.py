"""What the tools report, read from their own output; their command lines keep the yardstick's promises."""

from __future__ import annotations

from .tools import (
    SQLMAP_POINTS,
    SqlmapSettings,
    WapitiSettings,
    parse_sqlmap_output,
    parse_wapiti_output,
    sqlmap_command,
    wapiti_command,
)

SQLMAP_OUT = """\
[13:17:39] [INFO] GET parameter 'id' is 'Generic UNION query (NULL) - 1 to 20 columns' injectable
GET parameter 'id' is vulnerable. Do you want to keep testing the others (if any)? [y/N] N
sqlmap identified the following injection point(s) with a total of 43 HTTP(s) requests:
---
Parameter: id (GET)
    Type: boolean-based blind
    Title: AND boolean-based blind - WHERE or HAVING clause
    Payload: id=1 AND 5960=5960

    Type: time-based blind
    Title: SQLite > 2.0 AND time-based blind (heavy query)
    Payload: id=1 AND 1047=LIKE(CHAR(65,66),UPPER(HEX(RANDOMBLOB(200000000/2))))
---
[13:17:40] [INFO] the back-end DBMS is SQLite
"""

NOTHING = """\
[13:18:02] [WARNING] POST parameter 'username' does not seem to be injectable
[13:18:02] [CRITICAL] all tested parameters do not appear to be injectable.
"""

WAPITI_OUT = """\
[*] Launching module exec
---
Command execution in http://localhost:4000/ping via injection in the parameter host
Evil request:
    GET /ping?host=%3Benv%3B HTTP/1.1
---
---
Received a HTTP 500 error in http://localhost:4000/items
Evil request:
    GET /items?id=%27 HTTP/1.1
---
XXE vulnerability in http://localhost:4000/xml/import leading to file disclosure
Evil request:
    POST /xml/import HTTP/1.1
"""


def test_sqlmap_techniques_from_its_summary() -> None:
    assert parse_sqlmap_output(SQLMAP_OUT) == ["boolean-based blind", "time-based blind"]
    assert parse_sqlmap_output(NOTHING) == []


def test_wapiti_vulnerabilities_but_not_anomalies() -> None:
    assert parse_wapiti_output(WAPITI_OUT) == [
        {"what": "Command execution", "path": "/ping", "parameter": "host"},
        {"what": "XXE vulnerability", "path": "/xml/import", "parameter": ""},
    ]


def test_tools_send_a_browser_user_agent_to_a_host_name_and_keep_out_of_band_traffic_on_loopback(
    tmp_path, monkeypatch
) -> None:
    from . import tools

    monkeypatch.setattr(tools, "tool_program", lambda name: tmp_path / name)
    for point in SQLMAP_POINTS:
        command = sqlmap_command(point, "http://localhost:4000", tmp_path, SqlmapSettings())
        assert command[command.index("-u") + 1].startswith("http://localhost:4000/")
        assert "Mozilla/5.0" in command[command.index("--user-agent") + 1]
        assert "--batch" in command

    class Tap:
        url = "http://localhost:4001"

    class Path_:
        name = "direct"
        tap = Tap()

    command = wapiti_command(Path_(), tmp_path, "http://127.0.0.1:4002/", WapitiSettings())
    assert command[command.index("--endpoint") + 1] == "http://127.0.0.1:4002/"
    assert "--no-bugreport" in command
    assert "Mozilla/5.0" in command[command.index("-A") + 1]
