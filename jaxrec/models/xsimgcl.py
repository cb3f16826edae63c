"""XSimGCL: eXtremely Simple Graph Contrastive Learning (Yu et al., TKDE 2023).

One noisy LightGCN forward pass (SimGCL's sign-aligned uniform noise of norm
eps on every layer) serves both tasks: BPR + L2 on its final embeddings
(mean of layers 1..K) and lambda x InfoNCE (cosine, tau, in-batch) between the
final embeddings and the layer-l* embeddings of the batch's distinct users
and items (cross-layer contrast; l* = `cl_layer`, 1 = after the first
propagation). Ranking uses the un-noised propagation.
"""

from __future__ import annotations

import jraph

from jaxrec import losses
from jaxrec.batches import Batch
from jaxrec.models.simgcl import SimGCL


class XSimGCL(SimGCL):
  """XSimGCL: SimGCL's encoder with a single noisy pass and cross-layer CL.

  Attributes (besides SimGCL's):
    cl_layer: l*, the layer contrasted with the final embedding (1..K).
  """
  eps: float = 0.2
  ssl_weight: float = 0.2
  ssl_temperature: float = 0.15
  cl_layer: int = 1

  def loss(self, graph: jraph.GraphsTuple, batch: Batch):
    """BPR(noisy) + l2_reg * L2(ego) + ssl_weight * InfoNCE(final, layer l*)."""
    if not 1 <= self.cl_layer <= self.num_layers:
      raise ValueError(f"XSimGCL: cl_layer must be in 1..{self.num_layers}, "
                       f"got {self.cl_layer}")
    final, layers = self.encode(graph, self.make_rng("dropout"))
    out = self._out(final)
    bpr, reg = self.bpr_terms(out, batch)
    ssl = losses.batch_contrast(final, layers[self.cl_layer], batch,
                                self.num_users, self.num_items,
                                self.ssl_temperature,
                                self.contrast_rows)
    loss = bpr + self.l2_reg * reg + self.ssl_weight * ssl
    return loss, {"loss": loss, "bpr": bpr, "reg": reg, "ssl": ssl}

