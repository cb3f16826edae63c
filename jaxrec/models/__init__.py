"""Model registry: name -> Flax module class.

Adding a model = one module here, one line in MODELS, one config in configs/.
"""

import dataclasses

from jaxrec.models.base import Recommender
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.mf import MF
from jaxrec.models.gae import GAE
from jaxrec.models.gat import GAT
from jaxrec.models.gcn import GCN
from jaxrec.models.ngcf import NGCF
from jaxrec.models.sage import GraphSAGE
from jaxrec.models.sgl import SGL
from jaxrec.models.simgcl import SimGCL
from jaxrec.models.xsimgcl import XSimGCL
from jaxrec.models.alpharec import AlphaRec
from jaxrec.models.rlmrec import RLMRecCon, RLMRecGen
from jaxrec.models.textgnn import TextGNN
from jaxrec.models.fusion import Fusion
from jaxrec.models.designgnn import DesignGNN
from jaxrec.models.baselines import ClosedFormRecommender
from jaxrec.models.baselines import EASE, ItemKNN, MostPop
from jaxrec.models.rating import BiasedMF, GCMC, GlobalMean, RatingHead
from jaxrec.models.rating import UserItemBias

# Closed-form baselines (ClosedFormRecommender) are fitted, not trained:
# train.train_and_evaluate dispatches them to train.fit_closed_form.
MODELS: dict[str, type[Recommender] | type[ClosedFormRecommender]] = {
    "mf": MF,
    "lightgcn": LightGCN,
    "ngcf": NGCF,
    "gcn": GCN,
    "sage": GraphSAGE,
    "gat": GAT,
    "gae": GAE,
    "sgl": SGL,
    "simgcl": SimGCL,
    "xsimgcl": XSimGCL,
    "designgnn": DesignGNN,
    "textgnn": TextGNN,
    "rlmrec_con": RLMRecCon,
    "rlmrec_gen": RLMRecGen,
    "alpharec": AlphaRec,
    "fusion": Fusion,
    "mostpop": MostPop,
    "itemknn": ItemKNN,
    "ease": EASE,
    "biased_mf": BiasedMF,
    "gcmc": GCMC,
    "rating_head": RatingHead,
    "global_mean": GlobalMean,
    "user_item_bias": UserItemBias,
}


# Models that wrap a backbone (registry name -> default backbone). Their
# config names the backbone (`backbone`, `backbone_kwargs`); `get_model`
# builds it and hands it to the wrapper as its `net` submodule, so the
# wrapper never looks models up in this registry itself.
WRAPPERS = {"rlmrec_con": "lightgcn", "rlmrec_gen": "lightgcn",
            "rating_head": "lightgcn"}
BACKBONE_KEYS = ("backbone", "backbone_kwargs")


def model_keys(name: str) -> set[str]:
  """The keys `config.model` may hold for registered model `name`.

  Args:
    name: a registered model name.

  Returns:
    The model's constructor fields (less num_users / num_items and the
    backbone module of a wrapper, which `get_model` builds), plus
    `backbone` / `backbone_kwargs` for a wrapper.
  """
  fields = ({f.name for f in dataclasses.fields(MODELS[name])} -
            {"parent", "name", "num_users", "num_items"})
  if name in WRAPPERS:
    fields = (fields - {"net"}) | set(BACKBONE_KEYS)
  return fields


def get_model(name: str, num_users: int, num_items: int, **kwargs) -> Recommender:
  """Builds a registered model; unknown names list the valid ones.

  Args:
    name: registry name.
    num_users: U.
    num_items: I.
    **kwargs: `config.model`; for a wrapper (`WRAPPERS`), `backbone` (a
      registry name) and `backbone_kwargs` (its model kwargs) build the
      backbone passed as the wrapper's `net`.

  Returns:
    The unbound Flax module (or closed-form model).

  Raises:
    ValueError: unknown model name or key, or a backbone that is itself a
      wrapper, text-aligned or closed-form model.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model_name {name!r}; registered models: "
                     f"{sorted(MODELS)}")
  fields = model_keys(name)
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"config.model: unknown key(s) {unknown} for model "
                     f"{name!r}; valid keys: {sorted(fields)}")
  if name in WRAPPERS:
    backbone = kwargs.pop("backbone", WRAPPERS[name])
    backbone_kwargs = dict(kwargs.pop("backbone_kwargs", None) or {})
    if (backbone in WRAPPERS or backbone == "alpharec"
        or is_closed_form(backbone) or is_rating_model(backbone)):
      raise ValueError(f"{name}: backbone {backbone!r} is not a trainable "
                       "collaborative-filtering backbone")
    kwargs["net"] = get_model(backbone, num_users, num_items,
                              **backbone_kwargs)
  return MODELS[name](num_users=num_users, num_items=num_items, **kwargs)


def is_rating_model(name: str) -> bool:
  """Whether registered model `name` predicts ratings (config.task='rating')."""
  return bool(getattr(MODELS.get(name), "predicts_ratings", False))


def is_closed_form(name: str) -> bool:
  """Whether registered model `name` is fitted in closed form (baselines)."""
  cls = MODELS.get(name)
  return isinstance(cls, type) and issubclass(cls, ClosedFormRecommender)
