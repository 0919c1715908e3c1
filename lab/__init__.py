"""SFT Lab: instruction fine-tuning of tiny causal LMs, to learn and to try what-ifs.

The backing package: data, templates and masks, training, generation, scoring, experiments.
It imports nothing from Jupyter; `widgets/` are thin views over it.
"""
__version__ = "0.1.0"
