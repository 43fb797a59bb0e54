"""Command line: ``python -m training_job train | score | list | promote | rollback | serve``.

Every flag also reads an environment variable (``TRAINING_<FLAG>``), for containers. Exit codes:
0 success, 2 bad data / configuration / request (message on stderr, nothing published; or a version trained
and kept but not made CURRENT because its input schema would break the served version's callers), 1 a bug.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from segmentation_core.artefact import read_manifest
from segmentation_core.errors import ArtefactError, SegmentationError
from segmentation_core.logs import FORMATS, configure_logging
from segmentation_core.settings import add_options, at_least, option, refuse_bad_variables
from segmentation_core.signing import generate_key_pair, load_signing_key
from segmentation_core.store import ModelStore
from training_job.config import (ALGORITHMS, PRESETS, TrainingConfig, apply_overrides, load_config, load_preset,
                                 parse_k)
from training_job.errors import ConfigError, DataError
from training_job.limits import MAX_K, MIN_K

log = logging.getLogger("training_job")

ENV_PREFIX = "TRAINING_"


@dataclass(frozen=True)
class StoreOptions:
    """Where versions live, and how the job logs (every sub-command)."""

    store: Path = option(Path("./model-store"), "model store folder")
    log_format: str = option("text", "log line format", choices=FORMATS)


@dataclass(frozen=True)
class ModelOption:
    """Which model a sub-command works on."""

    model: str = option("customers", "model name")


@dataclass(frozen=True)
class TrainOptions:
    """``train``: the data, its shape, and the clustering."""

    data: str = option(None, "customer table or transaction log: CSV (any delimiter, .gz), Parquet or "
                                    "Excel file (--engine spark: a file, folder, glob or URI Spark reads)", required=True)
    preset: str | None = option(None, f"data shape: {', '.join(PRESETS)} or auto (none: auto unless --config "
                                      "is given)")
    config: Path | None = option(None, "TOML configuration for full control")
    k: str | None = option(None, f"number of segments ({MIN_K} to {MAX_K}), or auto")
    algorithm: str | None = option(None, "clustering algorithm (none: the preset's, else kmeans)", choices=ALGORITHMS)
    keep: int = option(10, "versions kept in the store", check=at_least(1))
    signing_key: Path | None = option(None, "Ed25519 private key (PEM, from `keygen`) that signs the version's "
                                            "manifest, for a scoring service run with --verify-key (none: unsigned)")
    skip_if_served: bool = option(False, "exit 0 without training when the model already serves a version "
                                         "(docker-compose's start-up command: `up` trains only into an empty store)")
    allow_breaking_schema: bool = option(False, "publish even when the new version's input schema would break the "
                                                "served version's callers (a feature removed, renamed or of another "
                                                "kind); without it such a version is kept, not served, and the "
                                                "command exits 2")


@dataclass(frozen=True)
class ScoreOptions:
    """``score``: the table to score, where the result goes, and as of when."""

    data: str = option(None, "the table or transaction log to score (--engine spark: any path or URI Spark reads)",
                       required=True)
    output: str = option(None, "result file: CSV (.csv, or .csv.gz gzipped) or Parquet (.parquet); --engine spark: "
                               "a Parquet folder", required=True)
    as_of: str | None = option(None, "transaction models: the ISO date the log is aggregated as of (none: the rule "
                                     "used in training, the day after the last purchase); lines on or after that day "
                                     "are left out")
    version: str | None = option(None, "a kept version instead of CURRENT, e.g. v0003")
    inputs: str = option("features", "input columns kept beside the id and the results: the model's features, all, "
                                     "or none (--engine pandas)", choices=("features", "all", "none"))
    id_column: str | None = option(None, "the input's id column, written under its own name (none: the model's id "
                                         "column, else the first named like an id, else row numbers in 'row')")


@dataclass(frozen=True)
class EngineOptions:
    """``train`` and ``score``: which engine runs them (``--spark-conf KEY=VALUE`` may be repeated)."""

    engine: str = option("pandas", "pandas (one process) or spark (a Spark cluster: pyspark and Java needed)",
                         choices=("pandas", "spark"))
    spark_master: str = option("", "--engine spark: the Spark master URL (local[N], spark://HOST:7077, yarn, "
                                   "k8s://...; default: spark-submit's --master, else local[2])")


@dataclass(frozen=True)
class ListOptions:
    """``list``: output format."""

    json: bool = option(False, "print JSON instead of a table")


@dataclass(frozen=True)
class PromoteOptions:
    """``promote``: the version to serve."""

    version: str = option(None, "version id, e.g. v0003", positional=True)


@dataclass(frozen=True)
class SchemaOverride:
    """``promote`` and ``rollback``: serve a version whose input schema breaks the served version's callers."""

    allow_breaking_schema: bool = option(False, "serve the version even when its input schema would break the "
                                                "served version's callers (a feature removed, renamed or of "
                                                "another kind)")


@dataclass(frozen=True)
class ServeOptions:
    """``serve``: the TrainingService's address, data folder, limits and credentials."""

    port: int = option(50052, "gRPC port; 0 picks a free one", check=at_least(0))
    host: str = option("127.0.0.1", "address to listen on")
    data_dir: Path = option(Path("./training-data"), "folder for uploaded tables and job records")
    max_upload_mb: int = option(200, "largest upload in MB, as sent (compressed, if it is)", check=at_least(1))
    max_table_mb: int = option(1024, "largest table an upload may hold once decompressed, in MB (a gzip bomb is "
                                     "refused as it expands)", check=at_least(1))
    keep: int = option(10, "versions kept in the store per model", check=at_least(1))
    port_file: str = option("", "write the bound port to this file once listening")
    tls_cert: str = option("", "PEM certificate chain; with --tls-key the service speaks TLS only")
    tls_key: str = option("", "PEM private key")
    token_file: str = option("", "file holding the bearer token every call must carry (health checks exempt); "
                                 "TRAINING_TOKEN gives it directly")
    signing_key: Path | None = option(None, "Ed25519 private key (PEM, from `keygen`) that signs every version the "
                                            "jobs write; PublishVersion then publishes only versions it signed "
                                            "(none: unsigned)")


@dataclass(frozen=True)
class KeygenOptions:
    """``keygen``: where the new key pair goes."""

    private_key: Path = option(None, "the private (signing) key to write, PEM, mode 0600; for train/serve "
                                     "--signing-key", required=True)
    public_key: Path = option(None, "the public (verify) key to write, PEM; for the scoring service's --verify-key",
                              required=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command (each flag also read from TRAINING_<FLAG>)."""
    parser = argparse.ArgumentParser(prog="python -m training_job",
                                     description="Train customer-segmentation models and manage their versions.")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "train": ("train on a customer table or transaction log and publish a version",
                  (TrainOptions, EngineOptions, StoreOptions, ModelOption)),
        "score": ("score a customer table, or a raw log with a transactions model's recipe, from the store (no "
                  "service needed)", (ScoreOptions, EngineOptions, StoreOptions, ModelOption)),
        "list": ("list the versions of a model, the current one marked", (ListOptions, StoreOptions, ModelOption)),
        "promote": ("make a version the served one", (PromoteOptions, SchemaOverride, StoreOptions, ModelOption)),
        "rollback": ("undo the last publish or promote: serve the version served before the current one (again: "
                     "further back)", (SchemaOverride, StoreOptions, ModelOption)),
        "serve": ("run the TrainingService (upload, profile, train, publish over gRPC)", (ServeOptions, StoreOptions)),
        "keygen": ("make an Ed25519 key pair for signed artefacts (train/serve --signing-key, scoring --verify-key)",
                   (KeygenOptions, StoreOptions)),
    }
    for name, (summary, groups) in commands.items():
        command = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        for group in groups:
            add_options(command, group, ENV_PREFIX)
        if EngineOptions in groups:
            variable = ENV_PREFIX + "SPARK_CONF"
            command.add_argument("--spark-conf", action="append", metavar="KEY=VALUE",
                                 default=os.environ.get(variable, "").split() or None,
                                 help=f"--engine spark: a Spark setting, e.g. spark.executor.memory=2g; repeat for "
                                      f"more (env {variable}: space-separated KEY=VALUE)")
    return parser


def _config_for(args: argparse.Namespace, frame_loader) -> TrainingConfig:
    if args.config and args.preset:
        raise ConfigError("give either --preset or --config, not both")
    k = parse_k(args.k, "--k") if args.k is not None else None  # before the table is read
    if args.config:
        config = load_config(args.config)
    elif args.preset in (None, "", "auto"):
        from training_job.schema_inference import infer_schema

        config = infer_schema(frame_loader())
    else:
        config = load_preset(args.preset)
    return apply_overrides(config, k=k, algorithm=args.algorithm)


def _served_version(store: ModelStore, model: str) -> str | None:
    """The version the model serves, if its CURRENT names one whose manifest verifies."""
    current = store.current(model)
    if current is None:
        return None
    try:
        read_manifest(store.version_dir(model, current))
    except SegmentationError as exc:
        log.warning("model %s: CURRENT names %s, which cannot be served (%s); training a new version",
                    model, current, exc)
        return None
    return current


def _cmd_train(args: argparse.Namespace) -> int:
    from segmentation_core.tables import read_table
    from training_job.train import train

    if args.skip_if_served:
        served = _served_version(ModelStore(args.store), args.model)
        if served is not None:
            log.info("model %s already serves %s in %s: not training (--skip-if-served; leave it out to retrain)",
                     args.model, served, args.store)
            return 0

    signer = load_signing_key(args.signing_key) if args.signing_key else None  # a bad key stops before training
    if args.engine == "spark":
        from training_job.spark.train import read_head, train_spark

        config = _config_for(args, lambda: read_head(args.data, args.spark_master or None, args.spark_conf))
        result = train_spark(args.data, config, ModelStore(args.store), model_name=args.model, keep=args.keep,
                             master=args.spark_master or None, spark_conf=args.spark_conf, signer=signer,
                             allow_breaking_schema=args.allow_breaking_schema)
    else:
        config = _config_for(args, lambda: read_table(args.data))
        result = train(Path(args.data), config, ModelStore(args.store), model_name=args.model, keep=args.keep,
                       signer=signer, allow_breaking_schema=args.allow_breaking_schema)
    if signer is not None:
        log.info("signed with key %s", signer.key_id)
    log.info("segments: %s", "; ".join(f"{i}: {name}" for i, name in enumerate(result.segment_names)))
    if result.refusal:  # already logged as a warning; the exit code tells scripts CURRENT did not move
        log.error("model %s version %s was kept, not published: its input schema would break the callers of the "
                  "served version (the warning above says how; report: %s)", result.model, result.version,
                  result.path / "report.html")
        return 2
    log.info("model %s version %s is now CURRENT in %s (report: %s)", result.model, result.version,
             args.store, result.path / "report.html")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from training_job.batch_score import score_file

    if args.engine == "spark":
        from training_job.spark.score import score_spark

        summary = score_spark(ModelStore(args.store), args.model, args.data, args.output, as_of=args.as_of,
                              version=args.version, master=args.spark_master or None, spark_conf=args.spark_conf)
    else:
        summary = score_file(ModelStore(args.store), args.model, Path(args.data), Path(args.output),
                             as_of=args.as_of, version=args.version, inputs=args.inputs, id_column=args.id_column)
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
    store.promote(args.model, args.version, allow_breaking_schema=args.allow_breaking_schema)
    log.info("model %s now serves %s", args.model, args.version)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    current = store.current(args.model)
    version = store.rollback(args.model, allow_breaking_schema=args.allow_breaking_schema)
    log.info("model %s rolled back from %s to %s (the version served before it)", args.model, current, version)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from segmentation_core.grpc_server import StopSignal
    from segmentation_core.logs import leave_process
    from training_job.server import TrainerSettings, TrainingServer

    settings = TrainerSettings(store=args.store, data_dir=args.data_dir, host=args.host, port=args.port,
                               port_file=args.port_file, max_upload_mb=args.max_upload_mb,
                               max_table_mb=args.max_table_mb, keep=args.keep,
                               tls_cert=args.tls_cert, tls_key=args.tls_key, token_file=args.token_file,
                               signing_key=str(args.signing_key or ""))
    stop = StopSignal(log)
    try:
        server = TrainingServer(settings).start()
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    stop.wait()
    server.stop()
    leave_process(log)


def _cmd_keygen(args: argparse.Namespace) -> int:
    key_id = generate_key_pair(args.private_key, args.public_key)
    log.info("key %s: private key %s (keep it secret: train/serve --signing-key), public key %s (scoring "
             "--verify-key)", key_id, args.private_key, args.public_key)
    return 0


STORE_READERS = ("list", "promote", "rollback")
"""Commands that work on an existing store: a --store folder that does not exist is refused."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    refuse_bad_variables(args)
    configure_logging(args.log_format)
    commands = {"train": _cmd_train, "score": _cmd_score, "list": _cmd_list, "promote": _cmd_promote,
                "rollback": _cmd_rollback, "serve": _cmd_serve, "keygen": _cmd_keygen}
    try:
        store = Path(args.store)
        if store.exists() and not store.is_dir():  # e.g. --data and --store swapped: say so before any work
            raise ConfigError(f"--store {store} is a file; the model store is a folder")
        if args.command in STORE_READERS and not store.exists():  # a typo would read as "no versions"
            raise ConfigError(f"--store {store}: no such folder (train creates a store; {args.command} needs one)")
        return commands[args.command](args)
    except (DataError, ConfigError, SegmentationError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; the store is unchanged")
        return 130


if __name__ == "__main__":
    sys.exit(main())
