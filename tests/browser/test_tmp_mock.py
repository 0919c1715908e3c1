import shutil
from pathlib import Path

import pytest
import test_quickstart as tq

pytestmark = pytest.mark.browser
def test_mock(jlab, monkeypatch):
    shutil.copy("/tmp/mock/mock_sftlab.py", jlab.server.root)
    orig = jlab.server.fresh_notebook
    monkeypatch.setattr(jlab.server, "fresh_notebook", lambda name, source=None: orig(name, Path("/tmp/mock/mock.ipynb")))
    tq.test_add_example_train_and_compare(jlab)
