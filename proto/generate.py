"""Generate the Python code of the contract: `python proto/generate.py` (or `--check` to fail when stale).

Output goes to `segmentation/v1/` at the repository root, importable as `segmentation.v1.scoring_pb2`, `.training_pb2`, `.profile_pb2`.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "segmentation" / "v1"
PROTOS = ["segmentation/v1/profile.proto", "segmentation/v1/scoring.proto", "segmentation/v1/training.proto"]
GENERATED = [f"{Path(p).stem}_pb2{suffix}" for p in PROTOS for suffix in (".py", ".pyi", "_grpc.py")]


def generate(out_root: Path) -> None:
    """Run protoc on every proto into ``out_root`` (which gets segmentation/v1/...)."""
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_root}", f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}", *PROTOS]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in (out_root / "segmentation", out_root / "segmentation" / "v1"):
        (package / "__init__.py").write_text('"""Generated from proto/ by proto/generate.py; do not edit."""\n')


def main() -> int:
    """Generate, or with --check compare a fresh generation with the committed files."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "segmentation" / "v1"
        names = GENERATED + ["__init__.py"]
        if args.check:
            stale = [n for n in names if not (OUT_DIR / n).exists() or not filecmp.cmp(fresh / n, OUT_DIR / n, shallow=False)]
            if stale:
                print(f"generated code is stale: {', '.join(stale)}; run: python proto/generate.py", file=sys.stderr)
                return 1
            return 0
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.copyfile(fresh / n, OUT_DIR / n)
        shutil.copyfile(Path(tmp) / "segmentation" / "__init__.py", OUT_DIR.parent / "__init__.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
