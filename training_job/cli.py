"""Command line: ``python -m training_job train | score | list | promote | rollback | serve``.

Every flag also reads an environment variable (``TRAINING_<FLAG>``), for containers. Exit codes:
0 success, 2 bad data / configuration / request (message on stderr, nothing published), 1 a bug.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from segmentation_core.artefact import read_manifest
from segmentation_core.errors import ArtefactError, SegmentationError
from segmentation_core.logs import configure_logging
from segmentation_core.store import ModelStore
from training_job.config import ALGORITHMS, PRESETS, TrainingConfig, apply_overrides, load_config, load_preset
from training_job.errors import ConfigError, DataError

log = logging.getLogger("training_job")

ENV_PREFIX = "TRAINING_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=_env("store", "./model-store"), type=Path,
                        help="model store folder (env TRAINING_STORE; default ./model-store)")
    parser.add_argument("--model", default=_env("model", "customers"),
                        help="model name (env TRAINING_MODEL; default customers)")
    parser.add_argument("--log-format", default=_env("log_format", "text"), choices=("text", "json"),
                        help="log line format (env TRAINING_LOG_FORMAT)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="python -m training_job", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train on a customer table or transaction log and publish a version")
    train.add_argument("--data", default=_env("data"), type=Path, required=_env("data") is None,
                       help="CSV (any delimiter, .gz), Parquet or Excel file (env TRAINING_DATA)")
    train.add_argument("--preset", default=_env("preset"),
                       help=f"data shape: {', '.join(PRESETS)} or auto (env TRAINING_PRESET; default auto "
                            "unless --config is given)")
    train.add_argument("--config", default=_env("config"), type=Path,
                       help="TOML configuration for full control (env TRAINING_CONFIG)")
    train.add_argument("--k", default=_env("k"), help="number of segments, or auto (env TRAINING_K)")
    train.add_argument("--algorithm", default=_env("algorithm"), choices=ALGORITHMS,
                       help="clustering algorithm (env TRAINING_ALGORITHM; default from the preset, kmeans)")
    train.add_argument("--keep", default=int(_env("keep", "10")), type=int,
                       help="versions kept in the store (env TRAINING_KEEP; default 10)")
    _common(train)

    score = sub.add_parser("score", help="score a customer table, or a raw log with a transactions model's recipe, "
                                         "from the store (no service needed)")
    score.add_argument("--data", default=_env("data"), type=Path, required=_env("data") is None,
                       help="the table or transaction log to score (env TRAINING_DATA)")
    score.add_argument("--output", default=_env("output"), type=Path, required=_env("output") is None,
                       help="result file: CSV, or Parquet when it ends in .parquet (env TRAINING_OUTPUT)")
    score.add_argument("--as-of", default=_env("as_of"),
                       help="transaction models: the ISO date the log is aggregated as of (default: the rule used "
                            "in training, the day after the last purchase); later lines are left out")
    score.add_argument("--version", default=None, help="a kept version instead of CURRENT, e.g. v0003")
    _common(score)

    listing = sub.add_parser("list", help="list the versions of a model, the current one marked")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _common(listing)

    promote = sub.add_parser("promote", help="make a version the served one")
    promote.add_argument("version", help="version id, e.g. v0003")
    _common(promote)

    rollback = sub.add_parser("rollback", help="serve the version published before the current one")
    _common(rollback)

    serve = sub.add_parser("serve", help="run the TrainingService (upload, profile, train, publish over gRPC)")
    serve.add_argument("--port", default=int(_env("port", "50052")), type=int,
                       help="gRPC port; 0 picks a free one (env TRAINING_PORT; default 50052)")
    serve.add_argument("--host", default=_env("host", "127.0.0.1"),
                       help="address to listen on (env TRAINING_HOST; default 127.0.0.1)")
    serve.add_argument("--data-dir", default=_env("data_dir", "./training-data"), type=Path,
                       help="folder for uploaded tables and job records (env TRAINING_DATA_DIR; "
                            "default ./training-data)")
    serve.add_argument("--max-upload-mb", default=int(_env("max_upload_mb", "200")), type=int,
                       help="largest upload in MB (env TRAINING_MAX_UPLOAD_MB; default 200)")
    serve.add_argument("--keep", default=int(_env("keep", "10")), type=int,
                       help="versions kept in the store per model (env TRAINING_KEEP; default 10)")
    serve.add_argument("--port-file", default=_env("port_file", ""),
                       help="write the bound port to this file once listening (env TRAINING_PORT_FILE)")
    serve.add_argument("--tls-cert", default=_env("tls_cert", ""), help="PEM certificate chain; with --tls-key "
                       "the service speaks TLS only (env TRAINING_TLS_CERT)")
    serve.add_argument("--tls-key", default=_env("tls_key", ""), help="PEM private key (env TRAINING_TLS_KEY)")
    serve.add_argument("--token-file", default=_env("token_file", ""),
                       help="file holding the bearer token every call must carry (health checks exempt); "
                            "TRAINING_TOKEN gives it directly")
    serve.add_argument("--store", default=_env("store", "./model-store"), type=Path,
                       help="model store folder (env TRAINING_STORE; default ./model-store)")
    serve.add_argument("--log-format", default=_env("log_format", "text"), choices=("text", "json"),
                       help="log line format (env TRAINING_LOG_FORMAT)")
    return parser


def _config_for(args: argparse.Namespace, frame_loader) -> TrainingConfig:
    if args.config and args.preset:
        raise ConfigError("give either --preset or --config, not both")
    if args.config:
        config = load_config(args.config)
    elif args.preset in (None, "", "auto"):
        from training_job.schema_inference import infer_schema

        config = infer_schema(frame_loader())
    else:
        config = load_preset(args.preset)
    return apply_overrides(config, k=args.k, algorithm=args.algorithm)


def _cmd_train(args: argparse.Namespace) -> int:
    from segmentation_core.tables import read_table
    from training_job.train import train

    config = _config_for(args, lambda: read_table(args.data))
    result = train(args.data, config, ModelStore(args.store), model_name=args.model, keep=args.keep)
    log.info("segments: %s", "; ".join(f"{i}: {name}" for i, name in enumerate(result.segment_names)))
    log.info("model %s version %s is now CURRENT in %s (report: %s)", result.model, result.version,
             args.store, result.path / "report.html")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from training_job.batch_score import score_file

    summary = score_file(ModelStore(args.store), args.model, args.data, args.output, as_of=args.as_of,
                         version=args.version)
    as_of = f" as of {summary.as_of}" if summary.as_of else ""
    log.info("scored %d customers%s with %s %s into %s (%d rows with an error)", summary.rows, as_of,
             summary.model, summary.version, summary.output, summary.errors)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    current = store.current(args.model)
    rows = []
    for version in store.versions(args.model):
        try:
            m = read_manifest(store.version_dir(args.model, version))
            rows.append({"version": version, "current": version == current, "created_at": m.get("created_at"),
                         "algorithm": m.get("algorithm", {}).get("name"), "k": len(m.get("segments", [])),
                         "silhouette": m.get("quality", {}).get("silhouette"),
                         "data": m.get("data", {}).get("name")})
        except ArtefactError as exc:
            rows.append({"version": version, "current": version == current, "error": str(exc)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"model {args.model!r} has no versions in {args.store}")
        return 0
    print(f"{'':2}{'version':9} {'created':21} {'algorithm':17} {'k':>3} {'silhouette':>10}  data")
    for r in rows:
        mark = "* " if r["current"] else "  "
        if "error" in r:
            print(f"{mark}{r['version']:9} BROKEN: {r['error']}")
            continue
        sil = f"{r['silhouette']:.3f}" if isinstance(r["silhouette"], float) else "-"
        print(f"{mark}{r['version']:9} {r['created_at'] or '-':21} {r['algorithm'] or '-':17} {r['k']:>3} "
              f"{sil:>10}  {r['data'] or '-'}")
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    read_manifest(store.version_dir(args.model, args.version))  # refuse to serve a broken version
    store.promote(args.model, args.version)
    log.info("model %s now serves %s", args.model, args.version)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    version = ModelStore(args.store).rollback(args.model)
    log.info("model %s rolled back to %s", args.model, version)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from training_job.server import TrainerSettings, TrainingServer

    settings = TrainerSettings(store=args.store, data_dir=args.data_dir, host=args.host, port=args.port,
                               port_file=args.port_file, max_upload_mb=args.max_upload_mb, keep=args.keep,
                               tls_cert=args.tls_cert, tls_key=args.tls_key, token_file=args.token_file)
    try:
        server = TrainingServer(settings).start()
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format)
    commands = {"train": _cmd_train, "score": _cmd_score, "list": _cmd_list, "promote": _cmd_promote,
                "rollback": _cmd_rollback, "serve": _cmd_serve}
    try:
        return commands[args.command](args)
    except (DataError, ConfigError, SegmentationError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; the store is unchanged")
        return 130


if __name__ == "__main__":
    sys.exit(main())
