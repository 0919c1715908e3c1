"""SFT Lab widgets: thin views over `lab/` to build a dataset, train live and compare.

`Lab()` shows all three in tabs, bound to one `lab.session.Session`; each also works alone.
"""
from .compare_view import CompareView
from .dataset_builder import DatasetBuilder
from .lab_app import Lab
from .train_panel import TrainPanel

__all__ = ["Lab", "DatasetBuilder", "TrainPanel", "CompareView"]
