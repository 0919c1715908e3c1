"""SFT Lab widgets: thin views over `lab/` to build a dataset, train live, compare and run
what-if experiments.

`Lab()` shows all four in tabs, bound to one `lab.session.Session`; each also works alone.
`widgets.show` holds the small HTML helpers the workshop notebooks use.
"""
from .compare_view import CompareView
from .dataset_builder import DatasetBuilder
from .experiments_view import ExperimentsView
from .gallery import Gallery
from .lab_app import Lab
from .train_panel import TrainPanel

__all__ = ["Lab", "DatasetBuilder", "TrainPanel", "CompareView", "ExperimentsView", "Gallery"]
