"""Command line: python -m jaxrec.serve --bundle DIR | --workdir W [options].

The model is loaded (and a bad source reported as one `error: ...` line,
exit status 1) before the server starts listening.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m jaxrec.serve",
      description="HTTP recommendation service (FastAPI + uvicorn) over an "
                  "export bundle or a training workdir, with hot reload.")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--bundle", help="bundle of `python -m jaxrec.export`")
  source.add_argument("--workdir", help="workdir of `python -m jaxrec.main`")
  parser.add_argument("--host", default="127.0.0.1")
  parser.add_argument("--port", type=int, default=8000)
  parser.add_argument("--workers", type=int, default=1,
                      help="server processes, each with its own model copy "
                           "and hot reload (after a change, workers may "
                           "answer from different versions until each has "
                           "polled and loaded it)")
  parser.add_argument("--max_k", type=int, default=1000,
                      help="largest k a request may ask for")
  parser.add_argument("--max_batch", type=int, default=64,
                      help="requests per scoring call (1 = no micro-batching)")
  parser.add_argument("--batch_wait_ms", type=float, default=2.0,
                      help="longest wait for a batch to fill")
  parser.add_argument("--reload_interval", type=float, default=2.0,
                      help="seconds between checks for a newer version "
                           "(0 = no hot reload)")
  parser.add_argument("--index", choices=("exact", "hnsw"), default="exact",
                      help="top-k over every item (exact) or an HNSW graph "
                           "(approximate; needs faiss-cpu, extra 'ann')")
  parser.add_argument("--ef_search", type=int, default=128,
                      help="HNSW search list size (accuracy / speed)")
  return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> None:
  if not 0 <= args.port <= 65535:
    raise ValueError(f"--port must be in 0..65535, got {args.port}")
  for name in ("workers", "max_k", "max_batch", "ef_search"):
    if getattr(args, name) < 1:
      raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
  if args.batch_wait_ms < 0 or args.reload_interval < 0:
    raise ValueError("--batch_wait_ms and --reload_interval must be >= 0")
  if args.index == "hnsw":
    try:
      import faiss  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError as err:
      raise ValueError("--index hnsw needs faiss: pip install -e \".[ann]\" "
                       "(faiss-cpu)") from err


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point; returns the exit status (1 on bad input)."""
  args = parse_args(argv)
  logging.getLogger("absl").addFilter(
      lambda r: "read only" not in r.getMessage())
  try:
    _check(args)
    import uvicorn  # pylint: disable=import-outside-toplevel
    from jaxrec.serve import app as app_lib  # pylint: disable=import-outside-toplevel
  except ImportError as err:
    print(f"error: the service needs FastAPI and uvicorn ({err}); install "
          "them with pip install -e \".[serve]\"", file=sys.stderr)
    return 1
  except ValueError as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  options = app_lib.Options(max_k=args.max_k, max_batch=args.max_batch,
                            batch_wait_ms=args.batch_wait_ms,
                            reload_interval_s=args.reload_interval,
                            index=args.index, ef_search=args.ef_search)
  try:
    source = app_lib.source_for(args.workdir, args.bundle)
    model = source.load()
  except (ValueError, FileNotFoundError, OSError, RuntimeError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  print(f"serving {model.metadata.get('model')} "
        f"{model.metadata.get('dataset')} version {model.version} on "
        f"http://{args.host}:{args.port}", file=sys.stderr)
  if args.workers == 1:
    app = app_lib.create_app(lambda: source, options, model)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
  else:
    # The parent only checked the source: every worker loads its own copy
    # and runs its own reload thread (the app's lifespan, `app_from_env`).
    del model
    os.environ[app_lib.ENV_CONFIG] = json.dumps(
        {"workdir": args.workdir, "bundle": args.bundle,
         "options": options.model_dump()})
    uvicorn.run("jaxrec.serve.app:app_from_env", factory=True,
                host=args.host, port=args.port, workers=args.workers,
                log_level="warning")
  return 0


if __name__ == "__main__":
  sys.exit(main())
