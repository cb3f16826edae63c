"""The FastAPI application: endpoints, error mapping and hot reload.

Endpoints (ids are the dataset's ORIGINAL ids; every response carries the
`version` of the bundle that answered it, and one request is answered by one
version only):

  GET  /recommend?user=U&k=20[&exclude=a,b][&items=c,d][&exclude_seen=true]
  POST /recommend            {"users": [...], "k": 20, "exclude": [...],
                              "items": [...], "exclude_seen": true}
  POST /recommend/new_user   {"items": [...], "text": "...", "k": 20,
                              "exclude": [...]}  (items, text or both)
  GET  /similar_items?item=I&k=20
  GET  /health
  GET  /metadata

Unknown user or item ids answer 404 with {"detail": message}; malformed
input, k < 1 or k above the limit answer 422. Requests without an `items`
candidate list are scored through the micro-batcher (one jitted top-K call
per batch); a candidate list is scored on its own with NumPy, since it
ranks only those items.

Hot reload: a thread polls the source (a bundle's metadata.json, or a
workdir's checkpoints and results.json); a changed source is loaded and
compiled in the background, then swapped in with one reference assignment.
Requests hold the version they started with, so none fails or mixes two.

With `--workers N` (uvicorn worker processes, built by `app_from_env`) the
application's lifespan runs in every worker, so each has its own model copy,
micro-batcher and reload thread, and swaps on its own as above. Workers poll
independently: after a change, they may answer from different versions
until each has polled and loaded it (one `reload_interval_s` plus the load);
`GET /health` names the answering process (`worker`, its pid).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from typing import Any, Callable, List, Literal, Optional, Union

import fastapi
from fastapi import Query
import numpy as np
import pydantic

from jaxrec import bundle as bundle_lib
from jaxrec.serve import ann
from jaxrec.serve import engine

# Most users in one POST /recommend, and most ids in an id list.
MAX_USERS_PER_REQUEST = 1024
MAX_IDS = 100_000

Id = Union[pydantic.StrictInt, pydantic.StrictStr]


class BundleSource:
  """A bundle directory: changes when its metadata.json is replaced."""

  def __init__(self, path: str):
    self.path = os.path.abspath(path)

  def signature(self) -> Any:
    st = os.stat(os.path.join(self.path, bundle_lib.METADATA_FILE))
    return (st.st_ino, st.st_mtime_ns, st.st_size)

  def load(self) -> engine.ServingModel:
    return engine.ServingModel.from_bundle(bundle_lib.read(self.path))


class WorkdirSource:
  """A training workdir: changes with a new checkpoint or results.json."""

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)

  def signature(self) -> Any:
    ckpt = os.path.join(self.workdir, "checkpoints")
    steps = sorted(n for n in os.listdir(ckpt) if n.isdigit())
    results = os.path.join(self.workdir, "results.json")
    mtime = (os.stat(results).st_mtime_ns if os.path.exists(results)
             else None)
    return (tuple(steps), mtime)

  def load(self) -> engine.ServingModel:
    # The training code path is needed here only, to rebuild the model.
    from jaxrec import export  # pylint: disable=import-outside-toplevel
    from jaxrec import recommend  # pylint: disable=import-outside-toplevel
    trained = recommend.TrainedModel.load(self.workdir)
    return engine.ServingModel.from_bundle(export.bundle_from_trained(trained))


class Options(pydantic.BaseModel):
  """Service settings.

  Attributes:
    max_k: largest k accepted (capped at the number of items).
    max_batch: most requests per scoring call (1 = no micro-batching).
    batch_wait_ms: longest wait for a batch to fill.
    reload_interval_s: source polling period (0 = no hot reload).
    index: 'exact' (every item scored) or 'hnsw' (approximate top-k through
      `ann.HnswIndex`, built for each loaded version; similar items stay
      exact).
    ef_search: HNSW search list size (accuracy / speed).
  """
  max_k: int = 1000
  max_batch: int = 64
  batch_wait_ms: float = 2.0
  reload_interval_s: float = 2.0
  index: Literal["exact", "hnsw"] = "exact"
  ef_search: int = 128


class RecommendBody(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid")
  users: List[Id] = pydantic.Field(min_length=1,
                                   max_length=MAX_USERS_PER_REQUEST)
  k: pydantic.StrictInt = 20
  exclude: List[Id] = pydantic.Field(default_factory=list, max_length=MAX_IDS)
  items: Optional[List[Id]] = pydantic.Field(default=None, min_length=1,
                                             max_length=MAX_IDS)
  exclude_seen: pydantic.StrictBool = True


class NewUserBody(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid")
  items: List[Id] = pydantic.Field(default_factory=list, max_length=MAX_IDS)
  text: Optional[pydantic.StrictStr] = pydantic.Field(
      default=None, min_length=1, max_length=20_000)
  k: pydantic.StrictInt = 20
  exclude: List[Id] = pydantic.Field(default_factory=list, max_length=MAX_IDS)


class Service:
  """The current model version, its reloader and the micro-batcher.

  Attributes:
    source: where versions come from.
    options: the settings.
    model: the version new requests are answered with.
  """

  def __init__(self, source, options: Options,
               model: Optional[engine.ServingModel] = None):
    self.source = source
    self.options = options
    self.scorer = engine.Scorer(max_rows=max(options.max_batch, 1) * 4)
    self.batcher = engine.MicroBatcher(self.scorer, options.max_batch,
                                       options.batch_wait_ms / 1000.0)
    self._signature = source.signature()
    self.model = self._prepare(model if model is not None else source.load())
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self.reloads = 0
    self._encoders: dict = {}
    self._encoder_lock = threading.Lock()

  def _prepare(self, model: engine.ServingModel) -> engine.ServingModel:
    # Compiles the new shapes (and builds the approximate index) before the
    # swap, so the first requests after it do not wait.
    if self.options.index == "hnsw":
      model = model._replace(ann=ann.HnswIndex(
          model.item_vectors, ann.HnswOptions(ef_search=self.options.ef_search)))
    self.scorer.warm_up(model, min(20, model.num_items))
    return model

  def start(self) -> None:
    self.batcher.start()
    if self.options.reload_interval_s > 0:
      self._thread = threading.Thread(target=self._watch, daemon=True,
                                      name="jaxrec-reload")
      self._thread.start()

  async def stop(self) -> None:
    self._stop.set()
    await self.batcher.stop()

  def check_reload(self) -> bool:
    """Loads and swaps in a changed source; returns whether it swapped."""
    try:
      signature = self.source.signature()
    except OSError:  # being replaced: try again at the next poll
      return False
    if signature == self._signature:
      return False
    try:
      model = self._prepare(self.source.load())
    except Exception as err:  # pylint: disable=broad-except
      logging.warning("reload skipped, keeping version %s: %s",
                      self.model.version, err)
      return False
    self._signature = signature
    if model.version != self.model.version:
      self.model = model  # one reference assignment: the swap
      self.reloads += 1
      logging.warning("process %d serving version %s", os.getpid(),
                      model.version)
    return True

  def _watch(self) -> None:
    while not self._stop.wait(self.options.reload_interval_s):
      self.check_reload()

  # --------------------------------------------------------------------------
  # Request helpers.

  def encode_text(self, model: engine.ServingModel, text: str) -> np.ndarray:
    """The user's text feature, by the encoder the run's texts went through.

    Raises:
      HTTPException: 422 for a model without text, 503 when the encoder
        cannot be loaded or does not match the bundle's text features.
    """
    fold = model.metadata.get("fold_in", {})
    if not model.text_dim:
      raise fastapi.HTTPException(
          422, f"model {model.metadata.get('model')!r} does not use text; "
          "fold a new user in from its items")
    name = fold.get("text_model") or ""
    with self._encoder_lock:  # one load per encoder, on first use
      if name not in self._encoders:
        try:
          # The encoder is needed for text fold-in only.
          from jaxrec import text as text_lib  # pylint: disable=import-outside-toplevel
          self._encoders[name] = text_lib.TextEncoder(name or None)
        except Exception as err:  # pylint: disable=broad-except
          self._encoders[name] = err
      encoder = self._encoders[name]
    if isinstance(encoder, Exception):
      raise fastapi.HTTPException(
          503, f"text fold-in unavailable: the text encoder "
          f"{name or 'all-MiniLM-L6-v2'!r} could not be loaded ({encoder})")
    if encoder.dim != model.text_dim:
      raise fastapi.HTTPException(
          503, f"text fold-in unavailable: the encoder gives {encoder.dim}-d "
          f"features, the model's item texts are {model.text_dim}-d (encoded "
          "by another model)")
    return np.asarray(encoder.encode([text]), np.float32)[0]

  def check_k(self, model: engine.ServingModel, k: int) -> int:
    limit = min(self.options.max_k, model.num_items)
    if not 1 <= k <= limit:
      raise fastapi.HTTPException(
          422, f"k must be between 1 and {limit}, got {k}")
    return k

  async def rank(self, model: engine.ServingModel, queries: np.ndarray,
                 exclude: list, k: int, candidates: Optional[np.ndarray],
                 similar: bool = False) -> list[engine.Ranked]:
    """Top-k per query row, through the batcher or over `candidates`."""
    if candidates is None:
      return await self.batcher.submit(
          model, engine.Job(queries, exclude, k, similar))
    out = []
    candidates = np.unique(candidates)
    for row, query in enumerate(queries):  # few rows: one list per user
      cand = np.setdiff1d(candidates, exclude[row]) if exclude else candidates
      scores = model.item_vectors[cand] @ query  # [C]
      order = np.lexsort((cand, -scores))[:k]  # ties: lower row first
      out.append(engine.Ranked(cand[order], scores[order]))
    return out


def _json(content: dict) -> fastapi.Response:
  # Serialised directly: FastAPI's generic encoder walks every list element
  # in Python, a measurable share of a request at these sizes.
  return fastapi.Response(json.dumps(content, separators=(",", ":")),
                          media_type="application/json")


def _split_ids(text: Optional[str]) -> list:
  if text is None:
    return []
  ids = [t.strip() for t in text.split(",")]
  if any(not t for t in ids) or len(ids) > MAX_IDS:
    raise fastapi.HTTPException(
        422, f"expected a comma-separated list of at most {MAX_IDS} ids, got "
        f"{text[:80]!r}")
  return ids


def _listing(model: engine.ServingModel, ranked: engine.Ranked) -> dict:
  return {"items": [model.item_ids[r] for r in ranked.rows.tolist()],
          "scores": [float(s) for s in ranked.scores.tolist()]}


def _excluded(model, user_rows, exclude_rows, exclude_seen) -> list:
  return [np.concatenate([model.seen(u) if exclude_seen else
                          np.zeros(0, np.int64), exclude_rows])
          for u in user_rows.tolist()]


def create_app(source_factory: Callable[[], Any],
               options: Optional[Options] = None,
               model: Optional[engine.ServingModel] = None) -> fastapi.FastAPI:
  """The service application.

  Args:
    source_factory: builds the model source (`BundleSource` or
      `WorkdirSource`) when the application starts.
    options: service settings.
    model: the source's current version, when already loaded.

  Returns:
    The FastAPI application; run it with uvicorn.
  """
  options = options or Options()
  holder: dict[str, Service] = {}

  @contextlib.asynccontextmanager
  async def lifespan(app):
    del app
    service = Service(source_factory(), options, model)
    service.start()
    holder["service"] = service
    yield
    await service.stop()

  app = fastapi.FastAPI(title="jaxrec", lifespan=lifespan)

  @app.exception_handler(engine.UnknownIdError)
  async def unknown_id(request, err):
    del request
    return fastapi.responses.JSONResponse(status_code=404,
                                          content={"detail": str(err)})

  @app.get("/health")
  async def health():
    """Version, answering process (pid), reload and batching counters."""
    service = holder["service"]
    return _json({"status": "ok", "version": service.model.version,
                  "worker": os.getpid(), "reloads": service.reloads,
                  "batches": service.batcher.batches,
                  "jobs": service.batcher.jobs})

  @app.get("/metadata")
  async def metadata():
    model = holder["service"].model
    return _json({**model.metadata, "version": model.version})

  @app.get("/recommend")
  async def recommend_one(user: str = Query(min_length=1, max_length=200),
                          k: int = 20, exclude: Optional[str] = None,
                          items: Optional[str] = None,
                          exclude_seen: bool = True):
    service = holder["service"]
    model = service.model
    service.check_k(model, k)
    rows = model.user_rows([user])
    excl = model.item_rows(_split_ids(exclude))
    cand = model.item_rows(_split_ids(items)) if items is not None else None
    ranked = await service.rank(
        model, model.user_vectors[rows], _excluded(model, rows, excl,
                                                   exclude_seen), k, cand)
    return _json({"version": model.version, "user": model.user_ids[rows[0]],
                  **_listing(model, ranked[0])})

  @app.post("/recommend")
  async def recommend_many(body: RecommendBody):
    service = holder["service"]
    model = service.model
    service.check_k(model, body.k)
    rows = model.user_rows(body.users)
    excl = model.item_rows(body.exclude)
    cand = model.item_rows(body.items) if body.items is not None else None
    ranked = await service.rank(
        model, model.user_vectors[rows], _excluded(model, rows, excl,
                                                   body.exclude_seen),
        body.k, cand)
    return _json({"version": model.version,
                  "results": [{"user": model.user_ids[r], **_listing(model, x)}
                              for r, x in zip(rows.tolist(), ranked)]})

  @app.post("/recommend/new_user")
  async def recommend_new_user(body: NewUserBody):
    """Online fold-in: a user vector from the given items, no retraining.

    The rule is the bundle's 'fold_in' (see `jaxrec.export`): for LightGCN,
    the user's propagated layers from the fixed item layers with a zero
    layer-0 embedding; for TextGNN / AlphaRec the same plus the model's map
    of the user's text feature (the encoded `text` when given, else the
    mean of its items' text features); for other embedding models, the
    mean of the items' vectors; exact for ItemKNN / EASE / MostPop. The
    given items are excluded from the list.
    """
    service = holder["service"]
    model = service.model
    service.check_k(model, body.k)
    if not body.items and body.text is None:
      raise fastapi.HTTPException(422, "give the user's items, a text, or "
                                  "both")
    history = model.item_rows(body.items)
    excl = np.concatenate([history, model.item_rows(body.exclude)])
    text = None
    if body.text is not None:
      text = await asyncio.get_running_loop().run_in_executor(
          None, service.encode_text, model, body.text)
    try:
      query = model.fold_in(history, text)[None]  # [1, d]
    except ValueError as err:
      raise fastapi.HTTPException(422, str(err)) from err
    ranked = await service.rank(model, query, [excl], body.k, None)
    return _json({"version": model.version, "fold_in": model.metadata.get(
        "fold_in", {}).get("mode"), **_listing(model, ranked[0])})

  @app.get("/similar_items")
  async def similar_items(item: str = Query(min_length=1, max_length=200),
                          k: int = 20):
    """Items by cosine similarity of their vectors, the item itself left out."""
    service = holder["service"]
    model = service.model
    service.check_k(model, k)
    row = model.item_rows([item])
    query = model.item_vectors[row]
    query = query / max(float(np.linalg.norm(query)), 1e-12)
    ranked = await service.rank(model, query, [row], k, None, similar=True)
    return _json({"version": model.version, "item": model.item_ids[row[0]],
                  **_listing(model, ranked[0])})

  app.state.holder = holder
  return app


def source_for(workdir: Optional[str], bundle: Optional[str]):
  """`WorkdirSource` or `BundleSource` for exactly one of the arguments."""
  if (workdir is None) == (bundle is None):
    raise ValueError("give exactly one of --workdir and --bundle")
  return WorkdirSource(workdir) if workdir else BundleSource(bundle)


# Environment variable carrying the settings to uvicorn worker processes.
ENV_CONFIG = "JAXREC_SERVE_CONFIG"


def app_from_env() -> fastapi.FastAPI:
  """Application factory for uvicorn workers (settings in `ENV_CONFIG`).

  Called once in every worker process; the model is loaded, and the reload
  thread started, by the application's lifespan in that worker.

  Returns:
    The FastAPI application of this worker.
  """
  config = json.loads(os.environ[ENV_CONFIG])
  source = source_for(config.get("workdir"), config.get("bundle"))
  return create_app(lambda: source, Options(**config["options"]))
