"""The renderers a report folder holds besides report.json, and the file each one writes.

A renderer is a pure function from the parsed report.json to the bytes of one file, or None
when the report has nothing for it (a canary chart without a canary). A new format is one module
with such a function plus one entry here; ``write_report`` and ``invoke report PATH`` pick it up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cautious.report import html, junit, markdown

__all__ = ["RENDERERS", "Renderer"]


@dataclass(frozen=True)
class Renderer:
    """One file of the report folder, drawn from report.json."""

    name: str
    filename: str
    render: Callable[[Mapping[str, Any]], bytes | None]


RENDERERS: tuple[Renderer, ...] = (
    Renderer("markdown", "report.md", markdown.render),
    Renderer("junit", "junit.xml", junit.render),
    Renderer("html", "report.html", html.render),
    # what report.html shows, as files beside it (no inline style or image: CSP-safe)
    Renderer("html-style", html.STYLESHEET, html.stylesheet),
    Renderer("timeline-chart", html.TIMELINE_CHART, html.timeline_chart),
    Renderer("canary-chart", html.CANARY_CHART, html.canary_chart),
)
