"""Bipartite user-item graphs, normalisation, padding and propagation."""

from jaxrec.graphs.bipartite import bipartite_graph
from jaxrec.graphs.bipartite import degree_normalise
from jaxrec.graphs.bipartite import gathers_bfloat16
from jaxrec.graphs.bipartite import is_symmetric
from jaxrec.graphs.bipartite import mark_bfloat16_gather
from jaxrec.graphs.bipartite import mark_symmetric
from jaxrec.graphs.padding import node_mask
from jaxrec.graphs.padding import num_nodes
from jaxrec.graphs.padding import pad_rows
from jaxrec.graphs.padding import pad_graph
from jaxrec.graphs.padding import round_up
from jaxrec.graphs.propagation import propagate
from jaxrec.graphs.propagation import split_nodes

__all__ = [
    "bipartite_graph", "degree_normalise", "is_symmetric", "mark_symmetric", "node_mask", "num_nodes", "pad_rows", "pad_graph", "round_up",
    "propagate", "split_nodes",
]
