"""Real-time recommendation service over a trained run or an export bundle.

  python -m jaxrec.serve --bundle DIR | --workdir W [--host --port --workers]

`engine` scores (jitted batched top-K, micro-batching) and `app` is the
FastAPI application (endpoints, errors, hot reload; with --workers N every
worker process loads and reloads on its own). FastAPI and uvicorn are
the optional `serve` extra: pip install -e ".[serve]".
"""
