"""Write the per-image requirement files ``deploy/requirements-<component>.txt`` from requirements.lock.

One source: pyproject.toml declares what each program needs (the base dependencies plus the program's
extra: ``training``, ``scoring``, ``dashboard``), requirements.lock (scripts/lock.sh) holds the exact
version and the hashes of every package. An image's file is the closure of its program's declared
dependencies (found through the installed packages' metadata, markers evaluated for CPython 3.11 on
Linux) with the lock's versions and hashes, so an image installs hash-checked exactly what
``pip install .[<extra>]`` resolves to in the tested environment. ``python deploy/component_requirements.py``
rewrites the files, ``--check`` exits 1 when a committed file differs (a test runs it).
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"

# Image -> the extras of pyproject.toml its program installs (besides the base dependencies).
COMPONENT_EXTRAS: dict[str, tuple[str, ...]] = {
    "training": ("training",),
    "scoring": ("scoring",),
    "dashboard": ("dashboard",),
    # The Spark image (compose profile `spark`): master, workers and the driver, i.e. the training job + pyspark.
    "spark": ("spark",),
}

# The images' Python: markers are evaluated for CPython 3.11 on Linux whatever machine runs this script.
TARGET_ENV = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.0",
              "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def project() -> dict:
    """The [project] table of pyproject.toml."""
    return tomllib.loads(PYPROJECT.read_text())["project"]


def declared(extras: tuple[str, ...]) -> dict[str, Requirement]:
    """Canonical name -> requirement of the base dependencies plus ``extras`` (self-references expanded)."""
    table = project()
    own = canonicalize_name(table["name"])
    found: dict[str, Requirement] = {}
    todo = [Requirement(r) for r in table.get("dependencies", [])]
    seen_extras: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop()
        if extra in seen_extras:
            continue
        if extra not in table.get("optional-dependencies", {}):
            raise SystemExit(f"pyproject.toml has no extra {extra!r}")
        seen_extras.add(extra)
        todo += [Requirement(r) for r in table["optional-dependencies"][extra]]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == own:
            todo += [r for e in sorted(req.extras - seen_extras) for r in declared((e,)).values()]
            seen_extras |= req.extras
            continue
        found.setdefault(name, req)
    return found


def read_pins(path: Path) -> dict[str, str]:
    """Canonical name -> exact version of every ``name==version`` line of a requirements file."""
    pins = {}
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        line = re.sub(r"\s--hash=\S+", "", line).strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        spec = next(iter(req.specifier), None)
        if spec is None or spec.operator != "==" or len(req.specifier) != 1:
            raise ValueError(f"{path.name}: {line!r} is not pinned with ==")
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def read_hashes(path: Path) -> dict[str, list[str]]:
    """Canonical name -> the ``--hash=sha256:...`` options of its entry in a hash-checked requirements file."""
    hashes: dict[str, list[str]] = {}
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = canonicalize_name(Requirement(re.sub(r"\s--hash=\S+", "", line).strip()).name)
            hashes[name] = re.findall(r"--hash=(\S+)", line)
    return hashes


def closure(direct: list[str]) -> dict[str, str]:
    """Canonical name -> installed version of the direct dependencies and everything they require."""
    found: dict[str, str] = {}
    todo = list(direct)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed in this environment; run scripts/setup.sh") from None
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(TARGET_ENV):
                todo.append(canonicalize_name(req.name))
    return found


def render(component: str) -> str:
    """The text of one component's requirement file."""
    pins, hashes = read_pins(LOCK), read_hashes(LOCK)
    direct = sorted(declared(COMPONENT_EXTRAS[component]))
    installed = closure(direct)
    for name, version in sorted(installed.items()):
        if name not in pins:
            raise SystemExit(f"{name} (needed by the {component} image) is not in requirements.lock; "
                             "run scripts/lock.sh")
        if pins[name] != version:
            raise SystemExit(f"{name}: requirements.lock pins {pins[name]} but {version} is installed; "
                             "run scripts/setup.sh first")
        if not hashes.get(name):
            raise SystemExit(f"{name}: requirements.lock has no hash for it; run scripts/lock.sh")
    extras = ", ".join(f"[{e}]" for e in COMPONENT_EXTRAS[component])
    lines = [f"# Image of the {component} component: pyproject.toml's dependencies + {extras}, with the",
             "# versions and hashes of requirements.lock. Generated by deploy/component_requirements.py; "
             "do not edit.",
             "# Direct dependencies:"]
    for group in (direct, sorted(n for n in installed if n not in direct)):
        for name in group:
            lines.append(" \\\n    ".join([f"{name}=={pins[name]}", *(f"--hash={h}" for h in hashes[name])]))
        if group is direct:
            lines.append("# Their dependencies:")
    return "\n".join(lines) + "\n"


def path_of(component: str) -> Path:
    """Where a component's requirement file lives."""
    return DEPLOY / f"requirements-{component}.txt"


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    for component in COMPONENT_EXTRAS:
        text = render(component)
        path = path_of(component)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run: python deploy/component_requirements.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
