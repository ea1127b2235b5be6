"""The README's promise: its test command is the one CI runs, and its main job uses real commands."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)]


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks()
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_main_job_uses_existing_cli_commands():
    from heal_swin.cli import build_parser

    main_job = _bash_blocks()[0]
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    used = re.findall(r"heal-swin ([a-z]+)", main_job)
    assert used and set(used) <= commands, (used, commands)
