"""The docs: every example in docs/examples runs and passes its checks, prints what its page shows
(docs/examples/NAME.out, included in the page), and the site builds, from any folder."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .browser import CHROMIUM, chromium_command

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))

UPDATE_ENV = "DATASERVE_UPDATE_DOC_OUTPUTS"
"""Set to 1 to rewrite each example's .out from its run instead of comparing them."""

_VARYING = [
    # Free ports (Linux hands out five-digit ones); the pages' own ports, such as 5001, stay.
    (re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0):\d{5}\b"), r"\1:PORT"),
    (re.compile(r"\bproxy-\d{5}\.key\b"), "proxy-PORT.key"),
    (re.compile(re.escape(tempfile.gettempdir()) + r"/tmp[\w-]+"), "TMP"),
    (re.compile(re.escape(str(Path.home())) + r"(?=/)"), "~"),
    # The line of CPython's _ssl.c that raised, which differs between Python versions.
    (re.compile(r"\(_ssl\.c:\d+\)"), "(_ssl.c:NNNN)"),
    # How long a call the log names has run.
    (re.compile(r"\(\d+\.\d+ s\)"), "(N.N s)"),
    # The time of a call log's line, and how long the call took.
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE), "2026-12-07 12:00:00,000 "),
    (re.compile(r"\b\d+\.\d\d ms in="), "N.NN ms in="),
    # The rate a progress bar of dataserve send shows, such as 250.0 MiB/s.
    (re.compile(r"\b\d+(?:\.\d)? (?:B|KiB|MiB|GiB)/s(?!\w)"), "RATE"),
]
"""What differs from one run of an example to the next, and the placeholder the .out files hold."""


_WARNING = re.compile(r"WARNING:|dataserve[\w ]*: warning:")
"""The lines of an example's stderr that its .log holds (uvicorn's and dataserve's own warnings)."""


def normalise(output: str) -> str:
    """``output`` with what varies per run (ports, temporary paths, the home folder) as placeholders."""
    for pattern, placeholder in _VARYING:
        output = pattern.sub(placeholder, output)
    return "\n".join(line.rstrip() for line in output.splitlines()) + "\n"


def _env() -> dict[str, str]:
    """The environment with this checkout's dataserve first on the path, and sets printed in one
    order from run to run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    env.pop(UPDATE_ENV, None)
    env.pop("XDG_RUNTIME_DIR", None)  # the proxy server's key file is then under ~/.cache, as shown
    return env


def _run(args: list[str], timeout: float, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"{' '.join(args)} did not finish in {timeout} s\nstderr:\n{stderr}")


def test_examples_exist() -> None:
    assert EXAMPLES, f"no examples in {ROOT / 'docs' / 'examples'}"


OPTIONAL = {"numpy", "pandas", "polars", "pyarrow", "fastapi", "trustme", "matplotlib", "prometheus_client"}
"""Packages dataserve does not install: an example that imports one says so, first thing."""


def test_examples_say_what_they_need() -> None:
    for example in sorted((ROOT / "docs" / "examples").rglob("*.py")):
        tree = ast.parse(example.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        needed = sorted(imported & OPTIONAL)
        if not needed:
            continue
        docstring = ast.get_docstring(tree) or ""
        assert docstring.startswith("Needs "), (
            f"{example.name} imports {needed}: start its docstring 'Needs ...'"
        )
        if example.parent.name == "examples":  # one that runs: it says what to install, not a traceback
            guarded = [
                node
                for node in ast.walk(tree)
                if isinstance(node, ast.Try)
                and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers)
            ]
            assert guarded, f"{example.name} should catch the ImportError of {needed} and say what to install"


# Each example runs once, on the servers' default lane: the lanes are compared call by call in
# the tests of the server, and running every example on both took a fifth of the suite's time.
@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    if "Needs the curl program" in example.read_text(encoding="utf-8") and shutil.which("curl") is None:
        pytest.skip(f"{example.name} runs curl, which is not installed here")
    result = _run([sys.executable, str(example)], timeout=60)
    assert result.returncode == 0, (
        f"{example.name} exited with {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    update = os.environ.get(UPDATE_ENV) == "1"
    hint = (
        f"if the new output is right, rewrite the .out and .log files with {UPDATE_ENV}=1 and check the diff"
    )
    shown = example.with_suffix(".out")
    if shown.exists():
        printed = normalise(result.stdout)
        if update:
            shown.write_text(printed, encoding="utf-8")
        assert printed == shown.read_text(encoding="utf-8"), (
            f"{example.name} no longer prints what its page shows ({shown.relative_to(ROOT)}); {hint}.\n"
            f"stdout:\n{printed}\nstderr:\n{result.stderr}"
        )
    # The warnings a page shows: lines of the example's stderr, in their order.
    log = example.with_suffix(".log")
    if log.exists():
        logged = normalise(result.stderr).splitlines()
        if update:
            log.write_text("".join(f"{line}\n" for line in logged if _WARNING.match(line)))
        lines = iter(logged)
        missing = [line for line in log.read_text(encoding="utf-8").splitlines() if line not in lines]
        assert not missing, f"{example.name} no longer logs {missing}; {hint}.\nstderr:\n{result.stderr}"


def test_each_shown_output_is_on_a_page() -> None:
    pages = "".join(page.read_text(encoding="utf-8") for page in (ROOT / "docs").glob("*.md"))
    for shown in sorted(
        [*(ROOT / "docs" / "examples").glob("*.out"), *(ROOT / "docs" / "examples").glob("*.log")]
    ):
        assert shown.with_suffix(".py").exists(), f"{shown.name} has no example that prints it"
        included = re.search(rf'--8<-- "examples/{re.escape(shown.name)}(:[\w:-]+)?"', pages)
        assert included, f"no page includes {shown.name}"
    # A page that shows some lines of an output names lines that are there.
    for name, first, last in re.findall(r'--8<-- "examples/([\w.]+):(\d+):(\d+)"', pages):
        lines = (ROOT / "docs" / "examples" / name).read_text(encoding="utf-8").splitlines()
        assert 1 <= int(first) <= int(last) <= len(lines), f"{name} has no lines {first} to {last}"
        assert all(lines[int(first) - 1 : int(last)]), f"lines {first} to {last} of {name} are blank"


_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
"""A fenced block of a page, with its language and what it holds."""

_SHOWN = {"", "text", "json", "console", "output"}
"""The languages of the blocks that show what a program printed or what a server replied."""


def test_shown_outputs_come_from_runs() -> None:
    # What a page shows a command print or a server reply is included from the output of an
    # example's real run (--8<-- "examples/NAME.out"), never written by hand, so it cannot drift.
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for block in _BLOCK.finditer(text):
            where = f"{page.name}, line {text.count(chr(10), 0, block.start()) + 1}"
            lines = [line.strip() for line in block["body"].splitlines() if line.strip()]
            if block["lang"] in _SHOWN:
                written = [line for line in lines if not line.startswith("--8<-- ")]
                assert not written, (
                    f"{where}: {written[:2]} is written by hand: print it from an example in "
                    "docs/examples, and include the example's .out"
                )
            elif block["lang"] in ("bash", "sh", "shell"):
                # A shell block holds commands to type; a transcript is a run's output.
                prompts = [line for line in lines if line.startswith("$ ")]
                assert not prompts, f"{where}: {prompts[:2]} is a transcript: include it from a run"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built with mkdocs --strict from a folder that is not the checkout's."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("pymdownx")
    pytest.importorskip("material")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    site = tmp_path_factory.mktemp("site")
    result = _run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        timeout=120,
        cwd=elsewhere,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed\n{result.stdout}\n{result.stderr}"
    return site


_EXTERNAL = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"")


def test_mkdocs_build_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    pages = list(site.rglob("*.html"))
    # Offline: no script, style sheet or font from the internet, and code coloured at build time.
    external = {str(page.relative_to(site)): _EXTERNAL.findall(page.read_text()) for page in pages}
    assert not {page: found for page, found in external.items() if found}
    assert '<span class="kn">from</span>' in (site / "quickstart" / "index.html").read_text()


SCREENSHOTS = ["index.html", "quickstart/index.html", "benchmarks/index.html", "wire-format/index.html"]
WIDE_TABLES = ["benchmarks/index.html", "types/index.html", "wire-format/index.html"]

_FITS = """<script>
window.addEventListener("load", () => {
  const cut = [...document.querySelectorAll(".md-typeset__scrollwrap, .md-typeset table")].filter(
    (table) => table.scrollWidth > table.clientWidth + 1);
  document.body.setAttribute("data-tables-cut", String(cut.length));
});
</script>"""
"""Counts the tables of a page that do not fit their column (that would need the scroll bar)."""


def _chromium(tmp_path: Path, *args: str) -> str:
    """What headless Chromium prints with ``args``, in a window 1280 px wide and a fresh profile."""
    profile = tempfile.mkdtemp(dir=tmp_path, prefix="profile-")
    command = [*chromium_command(profile), "--window-size=1280,1000", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as browser:
        try:
            stdout, _ = browser.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.communicate()
            pytest.fail(f"chromium {' '.join(args)} did not finish in 60 s")
    return stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium to render the pages")
def test_pages_render_in_chromium(site: Path, tmp_path: Path) -> None:
    for page in SCREENSHOTS:
        png = tmp_path / (page.replace("/", "-") + ".png")
        _chromium(tmp_path, f"--screenshot={png}", (site / page).as_uri())
        assert png.is_file(), f"no screenshot of {page}"
        assert png.stat().st_size > 20_000, f"the screenshot of {page} is all but empty"
    for page in WIDE_TABLES:
        # A copy of the page beside it (so that its style sheets load) that counts its cut tables.
        checked = (site / page).with_name("fits.html")
        checked.write_text((site / page).read_text().replace("</body>", _FITS + "</body>"))
        dom = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", checked.as_uri())
        found = re.search(r'data-tables-cut="(\d+)"', dom)
        assert found, f"the check of {page}'s tables did not run"
        assert found.group(1) == "0", f"{found.group(1)} table(s) of {page} do not fit at 1280 px"
