"""logocheck's count on the Prometheus endpoint."""

from __future__ import annotations

import re
import urllib.request

from cleanfeed.stream.metrics import MetricsServer


def test_logo_visible_frames_are_a_top_level_counter() -> None:
    server = MetricsServer(0)
    try:
        server({"final": False, "counters": {"logo_visible": 12, "logo_checked": 40},
                "stages": {"logocheck": {"counters": {"logo_visible": 12, "logo_checked": 40}}}})
        text = urllib.request.urlopen(server.url, timeout=5).read().decode()
        server({"final": True, "counters": {}, "stages": {}})
        none = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    assert re.search(r"^cleanfeed_logo_visible_total 12\.0$", text, re.M), text
    assert re.search(r"^cleanfeed_logo_visible_total 0\.0$", none, re.M)
