import io
import json
from enum import Enum

from gitops.engine import event_json
from gitops.watch.record import Log


def test_json_log_is_one_object_per_line():
    out = io.StringIO()
    log = Log("json", out)
    log("up.done", "create 2\nsame 1", commit="abc", changes={"create": 2})
    log("cycle.failed", "x", level="error")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert (first["event"], first["msg"], first["commit"], first["changes"]) == (
        "up.done", "create 2\nsame 1", "abc", {"create": 2})
    assert json.loads(lines[1])["level"] == "error"


def test_text_log():
    out = io.StringIO()
    Log("text", out)("watch.start", "watching", interval=1.0, none=None)
    assert out.getvalue().rstrip().endswith("info  watch.start: watching (interval=1.0)")


class Op(Enum):
    UPDATE = "update"


class Meta:
    def __init__(self):
        self.op, self.urn, self.diffs, self._private = Op.UPDATE, "urn:x", None, 1


class Event:
    def __init__(self):
        self.res_outputs_event, self.summary_event, self.sequence = Meta(), None, 3


def test_engine_events_become_plain_json():
    assert event_json(Event()) == {"res_outputs_event": {"op": "update", "urn": "urn:x"}, "sequence": 3}
