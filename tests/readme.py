"""The README as tests read it: its fenced blocks, inline code, and the command lines in them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from procs import REPO

README = REPO / "README.md"


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language (`sh`, `yaml`, ... or ""), its text, and the heading above it."""

    lang: str
    text: str
    heading: str

    @property
    def commands(self) -> list[str]:
        """The block's command lines: continuations (`\\` at the end of a line) joined, blank lines and
        whole-line comments left out."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return [
            line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]

    @property
    def file_name(self) -> str | None:
        """`my-exclusions.yaml` for a block whose first line is the comment `# my-exclusions.yaml`."""
        m = re.match(r"#\s*([\w.-]+\.[a-z]+)\s*\n", self.text)
        return m.group(1) if m else None


def fenced_blocks(text: str) -> list[Block]:
    blocks, heading = [], ""
    for m in re.finditer(r"^(#{1,6} [^\n]*)$|^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1).lstrip("#").strip()
        else:
            blocks.append(Block(m.group(2), m.group(3), heading))
    return blocks


def code_spans(text: str) -> list[str]:
    """Fenced code blocks and inline `code` of a Markdown text."""
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


def readme_commands(text: str) -> list[list[str]]:
    """Every mitmdump/mitmweb command line in the README's code (continuations joined), as argv."""
    commands = []
    for span in code_spans(text):
        for line in re.sub(r"\\\n\s*", " ", span).splitlines():
            m = re.match(r"\s*((?:\S*/)?(?:mitmweb|mitmdump) .*)", line)  # a line that runs it (not prose)
            if m:
                commands.append(shlex.split(m.group(1).replace("...", "")))
    return commands


def logoutguard_commands(text: str) -> list[list[str]]:
    """Every `logoutguard ...` command in the README's code that is a real command line (not a synopsis
    with `[OPTIONAL]` parts or `...`, not a bare mention such as `logoutguard run`, not a quoted
    output line such as `logoutguard scan: cannot read ...`), as the argv after the program name."""
    found = []
    for span in code_spans(text):
        for line in re.sub(r"\\\n\s*", " ", span).splitlines():
            for m in re.finditer(r"(?:^|[\s|(&;])(?:\S*/)?logoutguard((?: [^|;&)#`]*)?)", line):
                rest = m.group(1).strip()
                if "[" in rest or "..." in rest or re.search(r"\b[A-Z]{3,}\b", rest):
                    continue  # a synopsis: `logoutguard scan [FILE]`, `audit-logout URL ...`
                argv = shlex.split(rest)
                if argv and (len(argv) > 1 or argv[0].startswith("-")) and not argv[0].endswith(":"):
                    found.append(argv)
    return found
