"""The `>>>` examples in lab/ and widgets/ docstrings are tests too."""
import doctest
import importlib
import pkgutil

import pytest

import lab
import widgets


def modules():
    for pkg in (lab, widgets):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name != "lab.__main__":
                yield info.name


@pytest.mark.parametrize("name", sorted(modules()))
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
