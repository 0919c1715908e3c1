"""SFT Lab widgets: thin views over `lab/` for building a dataset, training and comparing.

`Lab()` shows all three in tabs, bound to one `lab.session.Session`.
"""
from .dataset_builder import DatasetBuilder

__all__ = ["DatasetBuilder"]
