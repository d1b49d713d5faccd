"""The fake ``gemini`` executable for tests: ``tests/fake_gemini.py`` (which reproduces the
real CLI 0.61.0's exit codes and output) installed under a temporary PATH directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FAKE = Path(__file__).with_name("fake_gemini.py")


class FakeGemini:
    """Installs the fake as ``gemini``; ``scenario(...)`` scripts it; ``runs()`` reads what each
    run received (argv, stdin, cwd, scenario, exit code)."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.dir = tmp_path / "bin"
        self.dir.mkdir()
        self.path = self.dir / "gemini"
        source = FAKE.read_text().split("\n", 1)[1]
        self.path.write_text(f"#!{sys.executable}\n{source}")
        self.path.chmod(0o755)
        self.log = tmp_path / "gemini-runs.jsonl"
        self.home = tmp_path / "home"
        self.home.mkdir()
        for name, value in {
            "FAKE_GEMINI_LOG": str(self.log),
            "FAKE_GEMINI_NOISE": "0",
            "IMS_GEMINI_BIN": str(self.path),
            "HOME": str(self.home),  # no real ~/.gemini settings are read
            "GEMINI_API_KEY": "fake-key",
        }.items():
            monkeypatch.setenv(name, value)
        self._monkeypatch = monkeypatch

    def scenario(self, spec: str) -> None:
        """One scenario for every model ("quota_day"), or per model ("a=quota_day,*=success")."""
        self._monkeypatch.setenv("FAKE_GEMINI_SCENARIO", spec)

    def runs(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def models(self) -> list[str]:
        found = []
        for run in self.runs():
            argv = run["argv"]
            found.append(argv[argv.index("-m") + 1] if "-m" in argv else "")
        return found
