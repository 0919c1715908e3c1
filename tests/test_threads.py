"""Widget state changes on the kernel's main thread only: in a real kernel, `Lab()` trains,
compares, scores references, explains a change, ranks examples and runs an experiments queue
while every trait change of every widget (the plotly charts' too) is recorded with its thread."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

CODE = textwrap.dedent("""
    import json, threading, traitlets
    from ipywidgets import Widget
    changes = []
    _notify = traitlets.HasTraits.notify_change
    def _recording(self, change):
        if isinstance(self, Widget):
            changes.append((type(self).__name__, change["name"], threading.current_thread().name))
        return _notify(self, change)
    traitlets.HasTraits.notify_change = _recording

    from widgets import Lab
    app = Lab("tiny-random", path=DIR + "/ds.jsonl", starter="persona", runs_dir=DIR + "/runs")
    t = app.trainer
    t.max_steps, t.timeline_points, t.sample_replies = 3, 3, True
    t.start(); run = t.wait()
    c = app.compare
    c.max_new_tokens, c.reference_mode, c.decoding = 4, True, "sampled"  # tiny-random: greedy is empty
    c.compare(app.builder.probes[:2]); c.wait()
    c.explain_change(); c.wait()
    c.which_examples(0); c.wait()
    e = app.experiments
    e.add("subsample", "4, 8", experiment="sizes")
    e.run(); e.wait()
    e.compare_clicks += 1; e.wait()  # the two runs the pickers show (the newest two)
    off = sorted({f"{w}.{name} in {thread}" for w, name, thread in changes
                  if thread != threading.main_thread().name})
    print("RESULT " + json.dumps({"changes": len(changes), "off_main": off,
                                  "steps": run.result.steps, "rows": len(c.rows),
                                  "error": [t.error, c.error, e.error],
                                  "compared": len(e.comparison_rows)}))
""")


def test_every_trait_change_happens_on_the_main_thread(tmp_path):
    outputs: list = []
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3",
                                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        reply = kc.execute_interactive(f"DIR = {str(tmp_path)!r}\n" + CODE, timeout=600,
                                       output_hook=outputs.append)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert reply["content"]["status"] == "ok", (reply["content"], text[-3000:])
    result = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    assert result["steps"] == 3 and result["rows"] == 2 and not any(result["error"]), result
    assert result["compared"] == 12, result  # the two runs answered the probes
    assert result["changes"] > 200, result  # the recorder saw the widgets work
    assert result["off_main"] == [], result["off_main"]
