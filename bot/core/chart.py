"""The stats card: a PNG of the retention report (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import io
import logging

from bot.core.retention import RetentionReport, human_bytes

log = logging.getLogger(__name__)


def render_card(report: RetentionReport, title: str = "markovbot retention report") -> bytes:
    """Draw the report as a PNG: seen vs kept bytes, forced vs free states, copy rates."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    sizes, states, rates = fig.subplots(1, 3)

    seen, kept = report.bytes_seen, report.bytes_kept
    sizes.bar(["seen", "kept"], [seen, kept], color=["#9aa5b1", "#3b82f6"])
    sizes.set_title("bytes")
    for x, amount in enumerate((seen, kept)):
        sizes.annotate(human_bytes(amount), (x, amount), ha="center", va="bottom", fontsize=8)
    sizes.set_yticks([])

    forced = report.forced_share
    if report.states:
        states.pie(
            [forced, 1 - forced],
            labels=[f"forced {forced:.0%}", f"free {1 - forced:.0%}"],
            colors=["#ef4444", "#22c55e"],
            startangle=90,
            textprops={"fontsize": 8},
        )
    states.set_title(f"states ({report.states:,})")

    names = ["copies", f"runs ≥{report.run_length}", "extracted"]
    values = [report.copy_rate, report.long_run_rate, report.extraction_rate]
    rates.barh(names, values, color=["#f59e0b", "#f97316", "#dc2626"])
    rates.set_xlim(0, 1)
    rates.set_title(f"replay ({report.samples} samples)")
    for y, value in enumerate(values):
        rates.annotate(
            f"{value:.0%}", (value, y), va="center", fontsize=8, xytext=(3, 0), textcoords="offset points"
        )

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
