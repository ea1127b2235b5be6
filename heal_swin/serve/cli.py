"""``heal-swin serve``: run the inference service with uvicorn."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["add_serve_commands", "config_from_args"]


def add_serve_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve exported models over HTTP (segmentation/depth + KServe v2)",
        description=(
            "Serve a model repository (Triton layout: REPO/<model>/config.pbtxt + model.json + <version>/model.onnx, REPO/cameras/<name>.json) with "
            "FastAPI + onnxruntime. Settings come from --config (YAML, see serve/config.yaml), then these flags."
        ),
    )
    p.add_argument("--model-repository", type=Path, default=None, help="model repository folder")
    p.add_argument("--config", type=Path, default=None, help="YAML settings file (e.g. serve/config.yaml)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None, help="uvicorn worker processes (default 1)")
    p.add_argument(
        "--precision",
        choices=("latest", "fp32", "int8"),
        default=None,
        help="default version: the highest (latest, the default) or the highest of that precision",
    )
    p.add_argument("--max-batch-size", type=int, default=None, help="micro-batch size limit (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=None, help="micro-batch wait (default 5 ms)")
    p.add_argument(
        "--concurrent-batches", type=int, default=None, help="model runs in flight at once (default 2)"
    )
    p.add_argument(
        "--batching",
        action="store_true",
        help="micro-batch concurrent requests (worth it on GPU; off by default)",
    )
    p.add_argument("--no-batching", action="store_true", help="run every request on its own (the default)")
    p.add_argument(
        "--intra-op-threads",
        type=int,
        default=None,
        help="onnxruntime threads per session (0 = cores / workers)",
    )
    p.add_argument("--max-upload-bytes", type=int, default=None, help="request body limit (default 20 MiB)")
    p.add_argument("--no-warmup", action="store_true", help="report ready without warming up")
    p.add_argument("--log-level", default=None, help="uvicorn log level (default info)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="any setting of serve/config.yaml, e.g. providers=[CUDA,CPU] max_infer_batch=16 default_models.depth=NAME (values are YAML)",
    )  # fmt: skip
    p.set_defaults(func=run_serve)


def config_from_args(args: argparse.Namespace):
    from heal_swin.serve.config import load_config, parse_overrides

    overrides = {
        "model_repository": str(args.model_repository) if args.model_repository else None,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "precision": args.precision,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "concurrent_batches": args.concurrent_batches,
        "batching": False if args.no_batching else (True if args.batching else None),
        "intra_op_threads": args.intra_op_threads,
        "max_upload_bytes": args.max_upload_bytes,
        "warmup": False if args.no_warmup else None,
        "log_level": args.log_level,
    }
    flags = {k: v for k, v in overrides.items() if v is not None}  # flags win over KEY=VALUE
    config = load_config(args.config, {**parse_overrides(getattr(args, "overrides", None) or []), **flags})
    if args.model_repository is None and args.config is None:
        from heal_swin.inference.demo import DEMO_REPOSITORY, DEMO_WARNING

        # No repository named: the bundled demo models, so that `heal-swin serve` alone shows something.
        config.model_repository = DEMO_REPOSITORY
        print(
            f"heal-swin serve: no --model-repository, serving {DEMO_REPOSITORY} ({DEMO_WARNING})",
            file=sys.stderr,
        )
    return config


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from heal_swin.serve.repository import ModelRepository

    config = config_from_args(args)
    repo = ModelRepository(
        config.model_repository, precision=config.preferred_precision
    )  # fail fast, one line, before forking
    if config.workers == 1:
        from heal_swin.serve.app import create_app

        uvicorn.run(create_app(config), host=config.host, port=config.port, log_level=config.log_level)
    else:
        # Each worker loads the models itself; a file onnxruntime cannot load must be this one-line error
        # (RepositoryError) here, not a traceback in every worker.
        from heal_swin.serve.runtime import ModelRuntime

        for versions in repo.versions.values():
            for entry in versions.values():
                ModelRuntime(entry, 1, 1)
        os.environ["HEAL_SWIN_SERVE_CONFIG"] = json.dumps(config.to_dict())
        uvicorn.run(
            "heal_swin.serve.app:app_from_env",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            log_level=config.log_level,
        )
    return 0
