"""The commands the documentation cites exist: every `benchmarks/*.py` named in README.md or
docs/*.md is a file of the repository, and every `flexae ...` command in their code (fenced shell
blocks and inline code spans) names an existing subcommand and only options that subcommand has.

This cannot tell whether a number in the docs came from the command beside it (that is a review
matter: docs/performance.md and the others put the command beside each number); it catches the
commands that went stale, a renamed subcommand or option, a removed benchmark script.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from flexae.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _code_lines(text: str) -> list[str]:
    """Shell lines of fenced blocks (not python ones; backslash continuations joined) and those
    inline code spans that start with a command (`flexae ...`, `python -m flexae ...`); other spans
    quote messages or names ("not a flexae run folder")."""
    lines, fence, buffer = [], None, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip()[3:].strip()
            continue
        if fence is not None:
            if fence in ("python", "py"):
                continue
            if line.rstrip().endswith("\\"):
                buffer += line.rstrip()[:-1] + " "
                continue
            lines.append(buffer + line)
            buffer = ""
        else:
            lines += [span for span in re.findall(r"`([^`]+)`", line)
                      if re.match(r"(?:\S*/)?flexae\s|(?:python3?|torchrun)\s.*-m flexae\s", span)]
    return lines


def _commands(line: str) -> list[list[str]]:
    """The argument lists of the `flexae` invocations in one shell line (comments cut off)."""
    line = re.split(r"\s#", " " + line, maxsplit=1)[0]
    found = []
    for part in re.split(r"&&|\|\||[|;]", line):
        # flexae as the command (after `$ `, `time`, VAR=value, a path) or as `... -m flexae`;
        # "another flexae process" in a quoted message is neither.
        match = (re.match(r"\s*(?:\$\s*)?(?:(?:time|nohup|[A-Z_]+=\S*)\s+)*(?:\S*/)?flexae\s+(.*)$", part)
                 or re.search(r"\s-m\s+flexae\s+(.*)$", part))
        if match:
            found.append(match.group(1).split())
    return found


def _clean(token: str) -> str:
    return token.strip("[](){}'\",.:")


def _check(args: list[str]) -> list[str]:
    """Problems with one `flexae ARGS` command: unknown subcommands or options."""
    command: click.Command = cli
    path = ["flexae"]
    problems = []
    for raw in args:
        token = _clean(raw)
        if not token or token == "...":
            continue
        if isinstance(command, click.Group) and not token.startswith("-"):
            names = [name for name in token.split(",") if name]
            if not all(re.fullmatch(r"[a-z][a-z0-9-]*", name) for name in names):
                break  # a placeholder (RUN_DIR, ...): nothing more to check
            unknown = [name for name in names if name not in command.commands]
            if unknown:
                problems.append(f"{' '.join(path)}: no subcommand {', '.join(unknown)}")
                break
            if len(names) > 1:  # {a,b,c}: several alternatives; their options are not checked
                break
            command = command.commands[names[0]]
            path.append(names[0])
        elif token.startswith("--"):
            option = token.split("=", 1)[0]
            known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
            known |= {"--help"}
            if option not in known:
                problems.append(f"{' '.join(path)}: no option {option}")
    return problems


def _all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for line in _code_lines(doc.read_text()):
            for args in _commands(line):
                found.append((doc.name, args))
    return found


def test_the_docs_cite_flexae_commands_and_the_scan_finds_them():
    """The scan itself works: it finds the commands the README and docs are known to cite."""
    cited = {" ".join(args[:2]) for _, args in _all_commands()}
    assert "bench train-step" in cited
    assert "reproduce fig3" in cited
    assert "metrics fid" in cited


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flexae_command_in_the_docs_exists(doc):
    problems = []
    for line in _code_lines(doc.read_text()):
        for args in _commands(line):
            problems += [f"`flexae {' '.join(args)}`: {p}" for p in _check(args)]
    assert not problems, "\n".join(problems)


def test_the_checker_rejects_a_stale_command():
    assert _check(["bench", "train-step", "--profile"]) == []
    assert _check(["bench", "train-steps"]) == ["flexae bench: no subcommand train-steps"]
    assert _check(["train", "--model", "wae", "--no-such-option"]) == ["flexae train: no option --no-such-option"]
    assert _check(["reproduce", "{fig2,fig3}"]) == []
    assert _check(["reproduce", "{fig2,fig9}"]) == ["flexae reproduce: no subcommand fig9"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_benchmark_script_named_in_the_docs_exists(doc):
    named = set(re.findall(r"benchmarks/[A-Za-z0-9_]+\.(?:py|sh)", doc.read_text()))
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"{doc.name} names {', '.join(missing)}, which the repository does not have"


def _load_benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_flop_count_in_docs_performance_still_holds():
    """docs/performance.md: 442.4 GFLOP per FlexAE-SR MNIST iteration at batch 128, 483.9 with the
    penalty's dead branches. Every counted op (matrix products, convolutions) is linear in the
    batch, so batch 8 gives 1/16 of it; the updates add up to the step."""
    flops = _load_benchmark("flops")
    row = flops.count_step("flexae-sr", "mnist", 8, threads=1)
    assert abs(16 * row["gflop"] - 442.4) < 0.1
    assert abs(sum(u["gflop"] for u in row["updates"].values()) - row["gflop"]) < 1e-6
    assert {name: u["calls"] for name, u in row["updates"].items()} == {
        "ae": 1, "critic": 5, "reg": 5, "ae_reg": 1, "gen": 1, "enc": 1}
    dead = flops.count_step("flexae-sr", "mnist", 8, dead_branches=True, threads=1)
    assert abs(16 * dead["gflop"] - 483.9) < 0.1
