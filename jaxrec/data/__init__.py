"""Data loading, preprocessing, splitting, sampling and synthetic data."""

from jaxrec.data.dataset import (DataError, Dataset, IdMap, Interactions,
                                 empty_interactions)
from jaxrec.data.loaders import (load_csv, load_hetrec_lastfm, load_lastfm,
                                 load_lightgcn, load_lightgcn_adj,
                                 load_ml_latest_small, load_movielens,
                                 load_recbole, load_rlmrec, load_selfrec,
                                 read_recbole, read_table, read_triplets,
                                 read_user_lines)
from jaxrec.data.preprocess import (DataWarning, RawInteractions, deduplicate,
                                    filter_to_train, kcore_filter, remap_ids,
                                    remove_overlap)
from jaxrec.data.registry import (DATASETS, ENV_VAR, load_dataset,
                                  resolve_data_root)
from jaxrec.data.sampler import (batches, epoch_rng, epoch_triples,
                                 num_batches, positive_keys, sample_negatives)
from jaxrec.data.splits import (carve_validation, leave_one_out, random_split,
                                split_dataset, temporal_split)
from jaxrec.data.synthetic import make_synthetic
from jaxrec.data.texts import (attach_item_texts, short_item_texts,
                               user_history_texts)

__all__ = [
    "DATASETS", "DataError", "DataWarning", "Dataset", "ENV_VAR", "IdMap",
    "Interactions", "RawInteractions", "attach_item_texts", "batches",
    "carve_validation", "deduplicate", "empty_interactions", "epoch_rng",
    "epoch_triples", "filter_to_train", "kcore_filter", "leave_one_out",
    "load_csv", "load_dataset", "load_hetrec_lastfm", "load_lastfm",
    "load_lightgcn", "load_lightgcn_adj", "load_ml_latest_small",
    "load_movielens", "load_recbole", "load_rlmrec", "load_selfrec",
    "make_synthetic", "num_batches", "positive_keys", "random_split",
    "read_recbole", "read_table", "read_triplets", "read_user_lines",
    "remap_ids", "remove_overlap", "resolve_data_root", "sample_negatives",
    "short_item_texts", "split_dataset", "temporal_split",
    "user_history_texts",
]
