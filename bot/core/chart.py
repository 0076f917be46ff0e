"""The stats card: the retention report as a PNG a member reads in two seconds (matplotlib, Agg, lazy).

One headline sentence with the verdict, three plainly labelled rates with their 95% intervals, and
what the bytes kept are for. Opaque light background, so it reads the same on Discord's dark and
light themes; drawn for 400 px wide.
"""

from __future__ import annotations

import io
import logging
import textwrap
from dataclasses import dataclass

from bot.core.rates import Rate
from bot.core.retention import RetentionReport, headline, human_bytes

log = logging.getLogger(__name__)

VERDICTS = {
    "replays": ("replays its source", "#b91c1c"),
    "some": ("gives back some", "#b45309"),
    "little": ("gives back little", "#15803d"),
}
INK, MUTED, TRACK, BAR = "#111827", "#4b5563", "#e5e7eb", "#2563eb"


@dataclass(frozen=True)
class Card:
    """Every piece of text the card shows, in drawing order (tests snapshot this, not pixels)."""

    title: str
    verdict: str
    headline: str
    bars: list[tuple[str, Rate]]
    footer: str

    def lines(self) -> list[str]:
        """The card's text, one line per piece."""
        out = [self.title, self.verdict, self.headline]
        out += [f"{label}: {value_label(rate)}" for label, rate in self.bars]
        return [*out, self.footer]


def value_label(rate: Rate) -> str:
    """'12% (10–14%)', or '12%' when every unit was examined."""
    low, high = rate.interval
    if rate.exact or not rate.n:
        return f"{rate.value:.0%}"
    return f"{rate.value:.0%} ({low:.0%}–{high:.0%})"


def card(report: RetentionReport, title: str) -> Card:
    """What the card of a report says."""
    verdict, _ = VERDICTS[report.verdict]
    bars = [
        ("messages said once, given back", report.discoverable_eidetic),
        ("outputs copying a message said once", report.copies_eidetic),
        (f"outputs with {report.run_length} words in a row from one", report.long_runs_eidetic),
    ]
    recent = (
        ", keyed fingerprints (so copies are refused) and recent messages, encrypted (so deletes are honoured)."
        if report.bytes_recent
        else " and keyed fingerprints (so copies are refused), not messages."
    )
    footer = (
        f"Kept {human_bytes(report.bytes_kept)} for {human_bytes(report.bytes_seen)} of text: counts "
        f"per author (so forget is exact){recent}"
    )
    return Card(title, f"This chain {verdict}", headline(report), bars, footer)


def alt_text(report: RetentionReport, title: str) -> str:
    """The card as one paragraph, for screen readers (Discord's image description, Matrix's body)."""
    return " ".join(card(report, title).lines())[:1024]


def render_card(report: RetentionReport, title: str = "markovbot retention report") -> bytes:
    """Draw the card as a PNG, 600 px wide (readable shown at 400)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    content = card(report, title)
    _, colour = VERDICTS[report.verdict]
    fig = Figure(figsize=(4.0, 3.3), dpi=150, facecolor="white")
    fig.text(0.05, 0.94, content.title, fontsize=11, fontweight="bold", color=INK, va="top")
    fig.text(0.05, 0.86, content.verdict, fontsize=10, fontweight="bold", color=colour, va="top")
    fig.text(0.05, 0.79, "\n".join(textwrap.wrap(content.headline, 58)), fontsize=7.5, color=INK, va="top")
    for i, (label, rate) in enumerate(content.bars):
        top = 0.56 - i * 0.145
        fig.text(0.05, top + 0.06, label, fontsize=7.5, color=INK, va="bottom")
        ax = fig.add_axes((0.05, top, 0.62, 0.05))
        ax.barh([0], [1.0], color=TRACK, height=1.0)
        ax.barh([0], [rate.value], color=BAR, height=1.0)
        low, high = rate.interval
        below, above = max(0.0, rate.value - low), max(0.0, high - rate.value)
        if below + above > 0:
            ax.errorbar([rate.value], [0], xerr=[[below], [above]], color=INK, capsize=2)
        ax.set_xlim(0, 1)
        ax.set_axis_off()
        fig.text(0.70, top + 0.025, value_label(rate), fontsize=8, fontweight="bold", color=INK, va="center")
    fig.text(0.05, 0.04, "\n".join(textwrap.wrap(content.footer, 70)), fontsize=6, color=MUTED, va="bottom")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()
