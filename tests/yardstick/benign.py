"""Benign traffic nobody here tuned for: text from this machine (Debian docs, man pages, Python's stdlib) and a crawler.

Classes of samples (a fixed seed picks files and passages, so a run is repeatable on one machine):
* `prose`: paragraphs of README/NEWS/*.txt files under /usr/share/doc;
* `man`: paragraphs of man pages (sections 1, 5, 8) with the troff markup removed;
* `code`: 3-20 consecutive lines of Python standard-library sources;
* `quotes`: paragraphs with quotes or apostrophes from the docs and man pages.
None of it was written by anyone on this project. When a source is missing on a machine, the class
has fewer samples (the report shows the counts).

`crawl()` follows the links and submits the forms of an application with realistic values, so it
can crawl the target and any other application on loopback (the `--crawl-app` hook).
"""

from __future__ import annotations

import gzip
import random
import re
import sysconfig
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

DOC_ROOT = Path("/usr/share/doc")
MAN_ROOT = Path("/usr/share/man")
MIN_LEN, MAX_LEN = 40, 1500


def _read(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as handle:
                raw = handle.read(200_000)
        else:
            raw = path.read_bytes()[:200_000]
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    return raw.decode("utf-8", "replace")


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        block = " ".join(line.strip() for line in block.splitlines()).strip()
        if MIN_LEN <= len(block) <= MAX_LEN and "\ufffd" not in block:
            out.append(block)
    return out


_TROFF_ESCAPE = re.compile(r"\\f[BIRP0-9]|\\f\(..|\\f\[[^]]*\]|\\\(..|\\\[[^]]*\]|\\[&|^e]|\\s[-+]?\d")


_TROFF_CHARS = {
    "\\(aq": "'",
    "\\(dq": '"',
    "\\(em": "-",
    "\\(en": "-",
    "\\(bu": "*",
    "\\'": "'",
    "\\`": "`",
    "\\-": "-",
}


def man_text(source: str) -> str:
    """troff source -> its text: request lines dropped, common escapes removed."""
    lines = []
    for line in source.splitlines():
        if line.startswith((".", "'")):
            if line.startswith((".PP", ".P", ".LP", ".SH", ".SS", ".TP", ".IP")):
                lines.append("")
            elif line.startswith((".B ", ".I ", ".BR ", ".IR ", ".BI ", ".RB ", ".RI ")):
                lines.append(line.split(" ", 1)[1].replace('"', ""))
            continue
        for escape, char in _TROFF_CHARS.items():
            line = line.replace(escape, char)
        lines.append(_TROFF_ESCAPE.sub("", line).replace("\\\\", "\\"))
    return "\n".join(lines)


def _files(root: Path, pattern: Callable[[Path], bool]) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and pattern(p))


def _doc_file(p: Path) -> bool:
    name = p.name.lower()
    return name.startswith(("readme", "news")) or name.endswith((".txt", ".txt.gz"))


def _pick(rng: random.Random, files: list[Path], count: int, split: Callable[[Path], list[str]]) -> list[str]:
    """Up to `count` passages, at most two per file, from files taken in a seeded random order."""
    order = list(files)
    rng.shuffle(order)
    out: list[str] = []
    for path in order:
        if len(out) >= count:
            break
        passages = split(path)
        if passages:
            out += rng.sample(passages, min(2, len(passages), count - len(out)))
    return out


def _code_chunks(path: Path, rng: random.Random) -> list[str]:
    lines = _read(path).splitlines()
    if len(lines) < 10:
        return []
    chunks = []
    for _ in range(2):
        start = rng.randrange(0, len(lines) - 3)
        chunk = "\n".join(lines[start : start + rng.randint(3, 20)]).strip()
        if MIN_LEN <= len(chunk) <= MAX_LEN:
            chunks.append(chunk)
    return chunks


def _with_quotes(text: str) -> list[str]:
    return [p for p in _paragraphs(text) if "'" in p or '"' in p]


def samples(seed: int, per_class: int) -> dict[str, list[str]]:
    """The benign samples per class (see the module docstring)."""
    rng = random.Random(seed)
    docs = _files(DOC_ROOT, _doc_file)
    mans = [p for s in ("man1", "man5", "man8") for p in _files(MAN_ROOT / s, lambda p: True)]
    stdlib = _files(
        Path(sysconfig.get_paths()["stdlib"]), lambda p: p.suffix == ".py" and "test" not in p.parts
    )
    prose = _pick(rng, docs, per_class, lambda p: _paragraphs(_read(p)))
    man = _pick(rng, mans, per_class, lambda p: _paragraphs(man_text(_read(p))))
    code = _pick(rng, stdlib, per_class, lambda p: _code_chunks(p, rng))
    quotes = _pick(
        rng,
        docs + mans,
        per_class,
        lambda p: _with_quotes(man_text(_read(p)) if p.is_relative_to(MAN_ROOT) else _read(p)),
    )
    return {"prose": prose, "man": man, "code": code, "quotes": quotes}


# --------------------------------------------------------------------------------------------
# crawler

FIELD_VALUES = {
    "username": "alice",
    "password": "wonderland",
    "email": "alice@example.org",
    "name": "Alice Liddell",
    "author": "alice",
    "subject": "Opening hours",
    "message": "Hello! Could you tell me when the shop opens on Saturday? Thanks, Alice.",
    "q": "manual",
}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self._form = {
                "action": a.get("action", ""),
                "method": a.get("method", "get").upper(),
                "enctype": a.get("enctype", ""),
                "fields": [],
                "files": [],
            }
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and a.get("name"):
            if a.get("type") == "file":
                self._form["files"].append(a["name"])
            else:
                self._form["fields"].append((a["name"], a.get("value", "")))
        elif self._form is not None and tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form["fields"].append((a["name"], ""))

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea:
            name, value = self._form["fields"][-1]
            self._form["fields"][-1] = (name, value + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None


Send = Callable[[str, str, dict[str, str], bytes], tuple[int, bytes]]


def form_request(page_url: str, form: dict) -> tuple[str, str, dict[str, str], bytes]:
    """A form submitted with its own values, or realistic ones where it has none."""
    fields = [(name, value or FIELD_VALUES.get(name, "test")) for name, value in form["fields"]]
    url = urljoin(page_url, form["action"] or page_url)
    if form["method"] != "POST":
        return "GET", url.split("?")[0] + "?" + urlencode(fields), {}, b""
    if form["files"] or "multipart" in form["enctype"]:
        boundary = "yardstickBoundary7MA4YWxkTrZu0gW"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n' for n, v in fields
        ]
        parts += [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"; filename="notes.txt"\r\n'
            "Content-Type: text/plain\r\n\r\nShopping list: milk, bread, tea.\r\n"
            for n in form["files"]
        ]
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        return "POST", url, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body
    return "POST", url, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(fields).encode()


def crawl(base: str, send: Send, limit: int) -> Iterator[tuple[str, str, int]]:
    """Breadth-first over `base`'s links and forms (same host, at most `limit` requests): (method, url, status)."""
    host = urlsplit(base).netloc
    queue: list[tuple[str, str, dict[str, str], bytes]] = [("GET", base.rstrip("/") + "/", {}, b"")]
    seen: set[tuple[str, str, bytes]] = set()
    sent = 0
    while queue and sent < limit:
        method, url, headers, body = queue.pop(0)
        if (method, url, body) in seen:
            continue
        seen.add((method, url, body))
        status, content = send(method, url, headers, body)
        sent += 1
        yield method, url, status
        if status != 200 or b"<" not in content[:2000]:
            continue
        parser = _Page()
        try:
            parser.feed(content.decode("utf-8", "replace"))
        except Exception:
            continue
        for href in parser.links:
            target = urljoin(url, href).split("#")[0]
            if urlsplit(target).netloc == host and urlsplit(target).scheme in ("http", "https"):
                queue.append(("GET", target, {}, b""))
        queue += [form_request(url, form) for form in parser.forms]
