"""No file of the repository points at files outside it: not at the notes the bot was built from
(their paths and section numbers), not at a machine's directories, not at the Go bot's sources.
What the Go bot did is told in docs/upgrading-from-go.md, in this repository."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "tests", "bench", "scripts", "docs", "examples", "deploy", "README.md")
TEXT_SUFFIXES = {".py", ".sql", ".md", ".html", ".txt", ".toml", ".json", ".yml", ".yaml",
                 ".cfg", ".ini", ".sh", ".service", ".js", ".css", ".j2", ""}
# Each pattern is split so this file does not match itself.
OUTSIDE = [
    ("a machine's directory", r"/wo" r"rk/"),
    ("the shared notes", r"(?:\.\./|\b)sha" r"red/(?:reference|DESIGN)"),
    ("a reference note", r"\brefer" r"ence/[\w-]+\.md"),
    ("a note on the Go bot", r"\bdaz-go-" r"(?:core|schema|plugins|runtime)"),
    ("the Kryten note", r"kryten-proto" r"col\.md"),
    ("the capture notes", r"cytube-server-cap" r"tures|\bcap" r"tures §"),
    ("a numbered defect of the notes", r"\b(?:schema|bug|ref) " r"B\d{1,2}\b"),
    ("a Go source file", r"\b[\w-]+(?:/[\w-]+)*\.g" r"o\b(?![\w(])"),
]


def scanned_files():
    for entry in SCANNED:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for file in files:
            if (file.is_file() and file.suffix in TEXT_SUFFIXES and "egg-info" not in str(file)
                    and "__pycache__" not in file.parts and file != Path(__file__).resolve()):
                yield file


def test_no_file_points_outside_the_repository():
    found = []
    patterns = [(what, re.compile(pattern, re.I)) for what, pattern in OUTSIDE]
    files = list(scanned_files())
    assert len(files) > 200 and ROOT / "src/daz/app.py" in files  # the scan sees the repository
    for file in files:
        relative = file.relative_to(ROOT).as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in patterns:
                if pattern.search(line):
                    found.append(f"{relative}:{number}: {what}: {line.strip()[:100]}")
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("line", [
    "see /wo" "rk/shared/DESIGN.md", "(../sha" "red/reference/x.md)", "refer" "ence/cytube.md §6",
    "daz-go-" "core §2", "kryten-proto" "col.md", "(cap" "tures §5)", "schema " "B13",
    "internal/plugins/greeter/greeter.g" "o", "see bot.g" "o for it"])
def test_the_patterns_catch_what_they_are_for(line):
    assert any(re.search(pattern, line, re.I) for _, pattern in OUTSIDE), line


@pytest.mark.parametrize("line", [
    "async def go() -> None:", "_run(go())", "self.go()", "cytu.be", "docs/upgrading-from-go.md",
    "the Go bot's schema", "google.com", "a go-between"])
def test_the_patterns_leave_ordinary_text_alone(line):
    assert not any(re.search(pattern, line, re.I) for _, pattern in OUTSIDE), line
