"""`python -m jaxrec.serve`: the real server in a subprocess, over HTTP.

A LightGCN trains two epochs on tiny synthetic data and is exported; the
server runs on a free port with a fast reload poll. The tests check every
endpoint against the library (`jaxrec.recommend`, `jaxrec.bundle`), the
404 / 422 answers, fold-in, a hot reload under concurrent requests (no
failed request, every response equal to the answer of the version it names),
in one process and with --workers 2 (each worker swaps, both end on the new
version), and random malformed requests (hypothesis), which must all get a
4xx.
"""

import concurrent.futures
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not "
                    "installed: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not "
                    "installed: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="httpx (HTTP client of the "
                            "tests) is not installed")
from hypothesis import given, settings, HealthCheck  # pylint: disable=g-import-not-at-top
from hypothesis import strategies as st  # pylint: disable=g-import-not-at-top

from jaxrec import bundle as bundle_lib  # pylint: disable=g-import-not-at-top
from jaxrec import export  # pylint: disable=g-import-not-at-top
from jaxrec import recommend  # pylint: disable=g-import-not-at-top
from jaxrec import train  # pylint: disable=g-import-not-at-top
from jaxrec.data.synthetic import make_synthetic  # pylint: disable=g-import-not-at-top
from tests import config_loader  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """A `python -m jaxrec.serve` subprocess and an HTTP client for it."""

  def __init__(self, args, log_path):
    self.port = _free_port()
    self.log = open(log_path, "w")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "jaxrec.serve", *args, "--port",
         str(self.port), "--reload_interval", "0.2", "--max_k", "30"],
        cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
    self.url = f"http://127.0.0.1:{self.port}"
    self.client = httpx.Client(base_url=self.url, timeout=30)
    # Generous: the host may be shared with other jobs (startup compiles).
    deadline = time.monotonic() + 300
    while True:
      if self.proc.poll() is not None:
        raise RuntimeError(f"server exited: {open(log_path).read()}")
      try:
        if self.client.get("/health").status_code == 200:
          return
      except httpx.TransportError:
        pass
      if time.monotonic() > deadline:
        raise RuntimeError(f"server did not start in 300 s: "
                           f"{open(log_path).read()}")
      time.sleep(0.2)

  def close(self):
    self.client.close()
    self.proc.terminate()
    try:
      self.proc.wait(10)
    except subprocess.TimeoutExpired:
      self.proc.kill()
    self.log.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("serve")
  config = config_loader.load("test.py", "lightgcn")
  config.num_epochs = 2
  config.batch_size = 64
  config.steps_per_call = 64
  workdir = str(root / "run")
  dataset = make_synthetic(num_users=30, num_items=40, num_interactions=360,
                           seed=0)
  train.train_and_evaluate(config, workdir, dataset)
  out = str(root / "bundle")
  export.export(workdir, out, "float32", evaluate=False)
  return workdir, out, recommend.TrainedModel.load(workdir)


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
  _, out, _ = run
  srv = Server(["--bundle", out], tmp_path_factory.mktemp("log") / "log")
  yield srv
  srv.close()


def test_health_and_metadata(server, run):
  _, out, _ = run
  version = bundle_lib.read(out).version
  health = server.client.get("/health").json()
  assert health["status"] == "ok" and health["version"] == version
  meta = server.client.get("/metadata").json()
  assert meta["version"] == version and meta["model"] == "lightgcn"
  assert meta["num_users"] == 30 and meta["fold_in"]["mode"] == "lightgcn"


def test_recommend_matches_the_library(server, run):
  _, _, trained = run
  frame = trained.recommend(k=5)
  for user in (0, 3, 29):
    got = server.client.get("/recommend", params={"user": user, "k": 5})
    assert got.status_code == 200
    body = got.json()
    want = frame[frame["user"] == user]
    assert body["user"] == user
    assert body["items"] == want["item"].tolist()
    np.testing.assert_allclose(body["scores"], want["score"], rtol=1e-5)
  batch = server.client.post("/recommend", json={"users": [0, 3], "k": 5})
  assert batch.status_code == 200
  results = batch.json()["results"]
  assert [r["user"] for r in results] == [0, 3]
  assert results[1]["items"] == frame[frame["user"] == 3]["item"].tolist()


def test_exclude_items_and_seen(server, run):
  _, _, trained = run
  first = server.client.get("/recommend", params={"user": 1, "k": 5}).json()
  top = first["items"][:2]
  excl = server.client.get("/recommend", params={
      "user": 1, "k": 5, "exclude": ",".join(map(str, top))}).json()
  assert not set(top) & set(excl["items"])
  assert excl["items"][:3] == first["items"][2:5]
  seen = set(trained.seen_csr()[1].indices.tolist())
  with_seen = server.client.get("/recommend", params={
      "user": 1, "k": 30, "exclude_seen": "false"}).json()
  assert seen & set(with_seen["items"])
  assert not seen & set(first["items"])
  cands = [0, 5, 9, 17, 33]
  only = server.client.get("/recommend", params={
      "user": 1, "k": 3, "items": ",".join(map(str, cands)),
      "exclude_seen": "false"}).json()
  scores = trained.scores(np.array([1]))[0][cands]
  assert only["items"] == [cands[i] for i in np.argsort(-scores)[:3]]


def test_new_user_fold_in(server, run):
  _, out, _ = run
  bundle = bundle_lib.read(out)
  history = [2, 7, 11, 30]
  got = server.client.post("/recommend/new_user",
                           json={"items": history, "k": 6, "exclude": [0]})
  assert got.status_code == 200
  body = got.json()
  assert body["fold_in"] == "lightgcn" and len(body["items"]) == 6
  assert not set(history + [0]) & set(body["items"])
  vec = bundle_lib.fold_in_vector("lightgcn", np.array(history),
                                  bundle.item_vectors, bundle.item_fold)
  scores = bundle.item_vectors @ vec
  scores[history + [0]] = -np.inf
  assert body["items"] == np.argsort(-scores, kind="stable")[:6].tolist()


def test_similar_items(server, run):
  _, out, _ = run
  items = bundle_lib.read(out).item_vectors
  unit = items / np.linalg.norm(items, axis=1, keepdims=True)
  got = server.client.get("/similar_items", params={"item": 4, "k": 3}).json()
  cos = unit @ unit[4]
  cos[4] = -np.inf
  assert got["item"] == 4
  assert got["items"] == np.argsort(-cos, kind="stable")[:3].tolist()
  np.testing.assert_allclose(got["scores"], np.sort(cos)[::-1][:3],
                             rtol=1e-5)


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("get", "/recommend", {"params": {"user": 999}}, 404),
    ("get", "/recommend", {"params": {"user": 1, "exclude": "1,999"}}, 404),
    ("get", "/recommend", {"params": {"user": 1, "items": "5,x"}}, 404),
    ("get", "/similar_items", {"params": {"item": 40}}, 404),
    ("post", "/recommend", {"json": {"users": [1, 77]}}, 404),
    ("post", "/recommend/new_user", {"json": {"items": [1, 41]}}, 404),
    ("get", "/recommend", {"params": {"user": 1, "k": 0}}, 422),
    ("get", "/recommend", {"params": {"user": 1, "k": -3}}, 422),
    ("get", "/recommend", {"params": {"user": 1, "k": 31}}, 422),
    ("get", "/recommend", {"params": {"user": 1, "k": "ten"}}, 422),
    ("get", "/recommend", {"params": {"k": 5}}, 422),
    ("get", "/recommend", {"params": {"user": 1, "exclude": "1,,2"}}, 422),
    ("get", "/similar_items", {"params": {"item": 1, "k": 10 ** 30}}, 422),
    ("post", "/recommend", {"json": {"users": []}}, 422),
    ("post", "/recommend", {"json": {"users": [1], "k": 2.5}}, 422),
    ("post", "/recommend", {"json": {"users": [[1]]}}, 422),
    ("post", "/recommend", {"json": {"user": [1]}}, 422),
    ("post", "/recommend", {"content": b"{not json"}, 422),
    ("post", "/recommend/new_user", {"json": {"items": []}}, 422),
    ("post", "/recommend/new_user", {"json": {"items": [1], "k": 0}}, 422),
    ("post", "/recommend/new_user", {"json": {"text": "a user"}}, 422),
    ("post", "/recommend/new_user", {"json": {"items": [1], "text": ""}},
     422),
])
def test_client_errors(server, method, path, kwargs, status):
  got = getattr(server.client, method)(path, **kwargs)
  assert got.status_code == status, got.text
  assert "detail" in got.json()


_ids = st.one_of(st.integers(-10 ** 20, 10 ** 20), st.text(max_size=8),
                 st.floats(allow_nan=False), st.none(), st.booleans(),
                 st.lists(st.integers(), max_size=2))
_bodies = st.one_of(
    st.dictionaries(st.sampled_from(["users", "items", "k", "exclude",
                                     "exclude_seen", "extra"]),
                    st.one_of(_ids, st.lists(_ids, max_size=4)), max_size=4),
    st.lists(_ids, max_size=3), _ids,
    st.fixed_dictionaries({"items": st.lists(_ids, max_size=3)},
                          optional={"text": _ids, "k": _ids}))


def _ids_ok(value, count) -> bool:
  return isinstance(value, list) and all(
      type(x) is int and 0 <= x < count for x in value)


def _k_ok(body) -> bool:
  k = body.get("k", 20)
  return type(k) is int and 1 <= k <= 30


def _well_formed(body, path) -> bool:
  """Whether `body` is a valid request to `path` (else a 4xx is due)."""
  if not isinstance(body, dict) or not _k_ok(body):
    return False
  if path == "/recommend":
    return (set(body) <= {"users", "k", "exclude"}
            and _ids_ok(body.get("users"), 30) and bool(body["users"])
            and _ids_ok(body.get("exclude", []), 40))
  # LightGCN has no text: a 'text' key is a 422 as well.
  return (set(body) <= {"items", "k", "exclude"}
          and _ids_ok(body.get("items"), 40) and bool(body["items"])
          and _ids_ok(body.get("exclude", []), 40))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, path=st.sampled_from(["/recommend",
                                           "/recommend/new_user"]),
       query=st.dictionaries(st.sampled_from(["user", "k", "exclude",
                                              "items", "exclude_seen"]),
                             st.text(max_size=6), max_size=3))
def test_random_malformed_requests_get_4xx(server, body, path, query):
  posted = server.client.post(path, json=body)
  if _well_formed(body, path):
    assert posted.status_code == 200, (body, posted.text)
  else:
    assert 400 <= posted.status_code < 500, (body, posted.text)
  got = server.client.get("/recommend", params=query)
  assert got.status_code < 500, (query, got.text)
  if "user" not in query or not query["user"]:
    assert 400 <= got.status_code < 500
  similar = server.client.get("/similar_items", params={
      "item" if k == "user" else k: v for k, v in query.items()})
  assert similar.status_code < 500, (query, similar.text)


def test_hot_reload_under_concurrent_requests(run, tmp_path):
  """Requests during a swap: none fails, each matches the version it names."""
  workdir, out, trained = run
  live = str(tmp_path / "live")
  export.export(workdir, live, "float32", evaluate=False)
  srv = Server(["--bundle", live], tmp_path / "log")
  try:
    old = bundle_lib.read(live)
    answers = {old.version: old}
    stop = time.monotonic() + 60

    def ask(n):
      out_ = []
      with httpx.Client(base_url=srv.url, timeout=30) as client:
        while time.monotonic() < stop:
          got = client.get("/recommend", params={"user": n % 30, "k": 5})
          out_.append((n % 30, got.status_code, got.json()))
          if len(out_) > 5 and got.json().get("version") != old.version:
            break
      return out_

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      futures = [pool.submit(ask, n) for n in range(4)]
      time.sleep(1.0)
      meta = export.export(workdir, live, "int8", evaluate=False)
      answers[meta["version"]] = bundle_lib.read(live)
      responses = [r for f in futures for r in f.result()]
    _assert_versioned_answers(responses, answers, trained)
    assert srv.client.get("/health").json()["version"] == meta["version"]
  finally:
    srv.close()


def _assert_versioned_answers(responses, answers, trained) -> None:
  """Every response succeeded, every version was seen, and each top-5 list
  is exactly the answer of the version it names.

  Args:
    responses: (user, status, body) per request.
    answers: version -> bundle.
    trained: the trained run (its seen items are excluded).
  """
  assert all(status == 200 for _, status, _ in responses)
  versions = {body["version"] for _, _, body in responses}
  assert versions == set(answers), versions
  seen = trained.seen_csr()
  for user, _, body in responses:
    version = answers[body["version"]]
    scores = version.item_vectors @ version.user_vectors[user]
    scores[seen[user].indices] = -np.inf
    want = np.argsort(-scores, kind="stable")[:5]
    assert body["items"] == want.tolist()
    np.testing.assert_allclose(body["scores"], scores[want], rtol=1e-5)


def _fresh_client(url):
  # No keep-alive: every request is a new connection, which the kernel hands
  # to whichever worker accepts first, so requests reach every worker.
  return httpx.Client(base_url=url, timeout=30,
                      limits=httpx.Limits(max_keepalive_connections=0))


def _worker_versions(url, want, version=None, timeout=60.0) -> dict:
  """Polls /health until `want` worker pids answered (with `version`)."""
  found = {}
  deadline = time.monotonic() + timeout
  with _fresh_client(url) as client:
    while len([v for v in found.values()
               if version is None or v == version]) < want:
      assert time.monotonic() < deadline, (
          f"{want} workers did not answer with version {version}: {found}")
      health = client.get("/health").json()
      found[health["worker"]] = health["version"]
      time.sleep(0.02)
  return found


def test_every_worker_reloads_under_concurrent_requests(run, tmp_path):
  """--workers 2: each worker swaps on its own; no request fails or mixes."""
  workdir, _, trained = run
  live = str(tmp_path / "live")
  export.export(workdir, live, "float32", evaluate=False)
  srv = Server(["--bundle", live, "--workers", "2", "--max_batch", "8"],
               tmp_path / "log")
  try:
    old = bundle_lib.read(live)
    answers = {old.version: old}
    before = _worker_versions(srv.url, 2, timeout=240)  # 2nd may be starting
    assert set(before.values()) == {old.version}
    stop = threading.Event()

    def ask(n):
      out_ = []
      with _fresh_client(srv.url) as client:
        while not stop.is_set():
          got = client.get("/recommend", params={"user": n % 30, "k": 5})
          out_.append((n % 30, got.status_code, got.json()))
      return out_

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      futures = [pool.submit(ask, n) for n in range(4)]
      time.sleep(0.5)
      meta = export.export(workdir, live, "int8", evaluate=False)
      answers[meta["version"]] = bundle_lib.read(live)
      try:
        after = _worker_versions(srv.url, 2, meta["version"])
      finally:
        time.sleep(0.3)  # a few requests more on the new version
        stop.set()
      responses = [r for f in futures for r in f.result()]
    assert set(before) <= set(after) and len(after) == 2
    _assert_versioned_answers(responses, answers, trained)
  finally:
    srv.close()


def test_cli_bad_source_is_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "jaxrec.serve", "--bundle", str(tmp_path)],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("error: ") and "not a jaxrec bundle" in lines[-1]


def test_serves_a_workdir_like_its_bundle(run, tmp_path):
  workdir, out, _ = run
  bundle = bundle_lib.read(out)
  srv = Server(["--workdir", workdir], tmp_path / "log")
  try:
    meta = srv.client.get("/metadata").json()
    assert meta["model"] == "lightgcn" and len(meta["version"]) == 16
    got = srv.client.get("/recommend", params={"user": 2, "k": 4}).json()
    assert got["version"] == meta["version"]
    scores = bundle.item_vectors @ bundle.user_vectors[2]
    scores[bundle.seen_indices[bundle.seen_indptr[2]:
                               bundle.seen_indptr[3]]] = -np.inf
    assert got["items"] == np.argsort(-scores, kind="stable")[:4].tolist()
  finally:
    srv.close()


def test_load_benchmark_renders_its_page(tmp_path):
  bench = config_loader.load_benchmark("serve_load")
  path = bench.random_bundle(str(tmp_path / "b"), 20, 50, 100, dim=8)
  bundle = bundle_lib.read(path)
  assert bundle.user_vectors.shape == (20, 8)
  assert len(bundle.seen_indices) == 100
  row = {"clients": 1, "requests": 10, "errors": 0, "qps": 5.0,
         "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
  page = bench.render_markdown({
      "command": "python benchmarks/serve_load.py", "host": "h",
      "load_average": 1.0, "seconds": 1.0, "models": [{
          "name": "m", "description": "d", "batched": [row],
          "unbatched": [row], "numpy": [row]}],
      "compression": bench.compression_rows([path])})
  assert "| 1 | batched | 5 |" in page and "shared 2-core machine" in page


def test_workdir_reloads_a_newer_checkpoint(tmp_path):
  """Training on in the served workdir: the server ends on its best params."""
  config = config_loader.load("test.py", "lightgcn")
  config.num_epochs = 1
  config.batch_size = 64
  config.steps_per_call = 64
  config.optimizer.learning_rate = 0.05  # validation moves within epochs
  workdir = str(tmp_path / "run")
  dataset = make_synthetic(num_users=60, num_items=40, num_interactions=900,
                           seed=1)
  train.train_and_evaluate(config, workdir, dataset)
  srv = Server(["--workdir", workdir], tmp_path / "log")
  try:
    first = srv.client.get("/health").json()["version"]
    config.num_epochs = 6  # resumes from epoch 1, checkpoints again
    train.train_and_evaluate(config, workdir, dataset)
    want = export.bundle_from_trained(
        recommend.TrainedModel.load(workdir)).version
    deadline = time.monotonic() + 60
    while srv.client.get("/health").json()["version"] != want:
      assert time.monotonic() < deadline, "no reload to the newest best"
      got = srv.client.get("/recommend", params={"user": 0, "k": 3})
      assert got.status_code == 200
      time.sleep(0.2)
    assert want != first  # validation improved after epoch 1: a new version
    assert srv.client.get("/health").json()["reloads"] >= 1
  finally:
    srv.close()


def test_text_model_folds_in_a_users_text(tmp_path):
  """TextGNN over MiniLM item texts: a new user from its text and items."""
  text_lib = pytest.importorskip("jaxrec.text")
  try:
    encoder = text_lib.TextEncoder()
  except Exception as err:  # pylint: disable=broad-except
    pytest.skip(f"the offline MiniLM encoder is not available: {err}")
  config = config_loader.load("test.py", "textgnn")
  config.num_epochs = 1
  config.batch_size = 64
  config.steps_per_call = 64
  workdir = str(tmp_path / "run")
  dataset = make_synthetic(num_users=30, num_items=40, num_interactions=360,
                           seed=0)
  train.train_and_evaluate(config, workdir, dataset)
  out = str(tmp_path / "bundle")
  export.export(workdir, out, "float32", evaluate=False)
  bundle = bundle_lib.read(out)
  srv = Server(["--bundle", out], tmp_path / "log")
  try:
    text = "likes quiet science fiction and long documentaries"
    body = {"items": [3, 8], "text": text, "k": 5}
    got = srv.client.post("/recommend/new_user", json=body)
    assert got.status_code == 200, got.text
    vec = bundle_lib.fold_in(bundle, [3, 8], encoder.encode([text])[0])
    scores = bundle.item_vectors @ vec
    scores[[3, 8]] = -np.inf
    want = np.argsort(-scores, kind="stable")[:5]
    np.testing.assert_allclose(got.json()["scores"], scores[want], rtol=1e-4,
                               atol=1e-5)
    only_text = srv.client.post("/recommend/new_user",
                                json={"text": text, "k": 5})
    assert only_text.status_code == 200 and len(only_text.json()["items"]) == 5
  finally:
    srv.close()
