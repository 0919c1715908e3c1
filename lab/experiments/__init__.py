"""What-if experiments: dataset variants, the queue that trains them, their plots.

`variants` holds the pure data transforms, `specs` turns a kind and typed values into
variants, `queue` trains them one after another through the session's job slot, `plots`
draws their curves and tables. The names below are the API notebooks and widgets use.
"""
from ..runner import probe_similarity
from ..runs import dataset_sha256, load_curve, slug
from .queue import (Job, Queue, TRANSFORMS, Variant, epoch_sweep, load_cards, loss_ablation,
                    lr_sweep, noise_sweep, run_variant, size_ladder, size_sweep, with_seeds)

__all__ = ["Job", "Queue", "TRANSFORMS", "Variant", "dataset_sha256", "epoch_sweep", "load_cards",
           "load_curve", "loss_ablation", "lr_sweep", "noise_sweep", "probe_similarity", "run_variant",
           "size_ladder", "size_sweep", "slug", "with_seeds"]
