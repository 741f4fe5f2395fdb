"""The toy lab's share-sweep figure: one line per group in the shared class colours, its ± sd band clipped to
0..100 % and drawn without vertex markers."""

import pandas as pd

from fairlin_core.viz.audit_figures import CLASS_COLORS
from fairlin_core.viz.toy_figures import share_sweep_figure


def test_share_sweep_bands_stay_within_0_and_100_percent_and_have_no_markers():
    summary = pd.DataFrame([{"share": share, "group": group, "mean": mean, "sd": sd, "seeds": 3}
                            for share, (mean, sd) in ((0.0, (0.97, 0.06)), (0.5, (0.40, 0.45)))
                            for group in ("minority", "majority", "overall")])
    figure = share_sweep_figure(summary)
    bands = [trace for trace in figure.data if trace.fill == "toself"]
    lines = {trace.name: trace for trace in figure.data if trace.fill != "toself"}
    assert len(bands) == 3 and all(band.mode == "lines" for band in bands)
    assert all(0.0 <= y <= 100.0 for band in bands for y in band.y)
    assert max(bands[0].y) == 100.0 and min(bands[0].y) == 0.0  # 97 + 6 and 40 - 45 are clipped
    assert lines["minority"].line.color == CLASS_COLORS["minority"]
    assert list(lines["majority"].y) == [97.0, 40.0]
