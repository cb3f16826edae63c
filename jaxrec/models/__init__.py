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
from jaxrec.models.designgnn import DesignGNN
from jaxrec.models.baselines import ClosedFormRecommender
from jaxrec.models.baselines import EASE, ItemKNN, MostPop

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
    "mostpop": MostPop,
    "itemknn": ItemKNN,
    "ease": EASE,
}


def get_model(name: str, num_users: int, num_items: int, **kwargs) -> Recommender:
  """Builds a registered model; unknown names list the valid ones."""
  if name not in MODELS:
    raise ValueError(f"unknown model_name {name!r}; registered models: "
                     f"{sorted(MODELS)}")
  cls = MODELS[name]
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"config.model: unknown key(s) {unknown} for model "
                     f"{name!r}; valid keys: {sorted(fields - {'num_users', 'num_items'})}")
  return cls(num_users=num_users, num_items=num_items, **kwargs)


def is_closed_form(name: str) -> bool:
  """Whether registered model `name` is fitted in closed form (baselines)."""
  cls = MODELS.get(name)
  return isinstance(cls, type) and issubclass(cls, ClosedFormRecommender)
