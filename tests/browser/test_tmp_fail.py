import json, pytest
pytestmark = pytest.mark.browser
def test_error_detected(jlab, tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": s}
                    for s in ["import sys; print('warn', file=sys.stderr)", "1/0", "x = 1"]],
          "nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    p = tmp_path / "bad.ipynb"; p.write_text(json.dumps(nb))
    jlab.open_notebook("bad.ipynb", source=p)
    jlab.page.evaluate("console.error('synthetic console error')")
    jlab.run_all(timeout_s=30)
    jlab.assert_clean("after Run All")
