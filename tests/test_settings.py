"""The one settings mechanism (segmentation_core/settings.py) and every program's use of it: flag, then
environment variable, then default; a bad value is one line naming it and exit code 2; --help is plain."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from segmentation_core.settings import at_least, option, parse

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    port: int = option(8000, "a port", check=at_least(0))
    ratio: float = option(0.5, "a ratio")
    store: Path = option(Path("./store"), "a folder")
    name: str | None = option(None, "a name", env="OTHER_NAME")
    mode: str = option("a", "a mode", choices=("a", "b"))
    verbose: bool = option(False, "say more")
    secret: int = option(0, "internal", internal=True)


def _parse(argv: list[str], environ: dict[str, str]) -> Example:
    return parse(Example, argparse.ArgumentParser(prog="example"), argv, "EX_", environ)


def test_flag_then_variable_then_default():
    assert _parse([], {}) == Example()
    env = {"EX_PORT": "9000", "EX_RATIO": " 0.25", "EX_STORE": "/s", "OTHER_NAME": "n", "EX_MODE": "b",
           "EX_VERBOSE": "yes"}
    assert _parse([], env) == Example(9000, 0.25, Path("/s"), "n", "b", True)
    assert _parse(["--port", "7000", "--mode", "a"], env).port == 7000
    assert _parse([], {"EX_VERBOSE": "0", "EX_PORT": ""}) == Example()  # an empty variable is no value


@pytest.mark.parametrize(("environ", "message"), [
    ({"EX_PORT": "abc"}, "example: error: EX_PORT='abc': should be a whole number"),
    ({"EX_PORT": "-1"}, "example: error: EX_PORT='-1': -1 should be >= 0"),
    ({"EX_RATIO": "half"}, "example: error: EX_RATIO='half': should be a number"),
    ({"EX_MODE": "c"}, "example: error: EX_MODE='c': should be one of a, b"),
    ({"EX_VERBOSE": "maybe"}, "example: error: EX_VERBOSE='maybe': should be one of 1, true, yes, on, 0, false"),
], ids=["int", "check", "float", "choices", "bool"])
def test_a_bad_variable_is_one_line_and_exit_2(environ, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _parse([], environ)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(message) and err.count("\n") == 1, err


def test_a_bad_variable_is_no_error_where_it_is_not_used():
    # Its flag given: the flag wins, the variable is never read.
    assert _parse(["--port", "7000"], {"EX_PORT": "abc"}).port == 7000


def test_a_bad_variable_of_another_sub_command_is_no_error(tmp_path):
    # TRAINING_KEEP is train's and serve's; `list` has no such option and must not fail on it (it did,
    # naming `train`), while `train` still refuses it.
    listed = _run(["training_job", "list", "--store", str(tmp_path)], TRAINING_KEEP="x")
    assert listed.returncode == 0 and "TRAINING_KEEP" not in listed.stderr, listed.stderr
    trained = _run(["training_job", "train", "--store", str(tmp_path), "--data", "x.csv"], TRAINING_KEEP="x")
    assert trained.returncode == 2
    assert trained.stderr.strip() == "python -m training_job train: error: TRAINING_KEEP='x': should be a whole number"


def test_help_names_variables_and_defaults_and_hides_internal_options(capsys):
    with pytest.raises(SystemExit):
        _parse(["--help"], {})
    text = " ".join(capsys.readouterr().out.split())
    assert "a port (env EX_PORT; default 8000)" in text and "(env OTHER_NAME; default none)" in text
    assert "--secret" not in text and "EX_SECRET" not in text
    assert _parse(["--secret", "3"], {}).secret == 3  # internal, yet it works


# ---- every program -----------------------------------------------------------------------------------------

PROGRAMS = [
    (["scoring_service"], "SCORING_PORT"),
    (["dash_ui"], "DASH_PORT"),
    (["training_job", "train", "--data", "x.csv"], "TRAINING_KEEP"),
    (["scoring_service.client", "score", "in.csv", "-o", "out.csv"], "SCORING_TIMEOUT"),
]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SCORING_", "DASH_", "TRAINING_"))}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**clean, **env})


@pytest.mark.parametrize(("args", "variable"), PROGRAMS, ids=[p[0][0] if len(p[0]) == 1 else p[0][0] + "-" + p[0][1]
                                                              for p in PROGRAMS])
def test_a_bad_variable_stops_every_program_with_one_line(args, variable):
    run = _run(args, **{variable: "abc"})
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{variable}='abc'" in lines[0] and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("args", [["scoring_service"], ["dash_ui"], ["training_job", "train"],
                                  ["training_job", "serve"], ["scoring_service.client", "score"]],
                         ids=["scoring", "dash", "train", "serve", "client"])
def test_help_is_plain_text_without_internal_flags(args):
    run = _run([*args, "--help"])
    assert run.returncode == 0, run.stderr
    assert "``" not in run.stdout and ":class:" not in run.stdout and "--worker-index" not in run.stdout
    assert "(env " in run.stdout


def test_run_sh_help_answers_without_the_virtualenv(tmp_path):
    # A PATH without the project's interpreter, and a HOME of its own: --help must not run the set-up.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([str(ROOT / "run.sh"), "--help"], capture_output=True, text=True, timeout=30, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: deploy/run_local.py") and "--dash-port" in run.stdout


def test_the_wsgi_entry_reads_the_dashboard_s_settings():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DASH_")}
    run = subprocess.run([sys.executable, "-c", "import dash_ui.wsgi"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**clean, "DASH_RETRY_SECONDS": "soon"})
    assert run.returncode == 2 and run.stderr.strip() == \
        "python -m dash_ui: error: DASH_RETRY_SECONDS='soon': should be a number", run.stderr
