"""Every HTML page wattwise renders, from one set of templates: the self-contained reports (a run, a comparison,
the optimizer's trade-off, a schedule plan) and the dashboard's pages, which wrap the same bodies in navigation.

Templates are Jinja2 with autoescaping on: run names, commands and notes are user text and are always escaped.
A standalone page carries a Content-Security-Policy that forbids every request (no script, no font, no image
fetched), so it renders the same offline; its plots are inline SVG (:mod:`wattwise.report.svg`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError
from wattwise.report import numbers

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["FORMATTERS", "Pages", "missing_extra"]

WINDOW_ROWS = 200  # window rows in a page's table; the record holds them all
FORMATTERS = SimpleNamespace(
    energy_j=numbers.energy_j,
    mass_g=numbers.mass_g,
    volume_l=numbers.volume_l,
    duration_s=numbers.duration_s,
    intensity=numbers.intensity,
    percent=numbers.percent,
    signed_percent=numbers.signed_percent,
    power_w=numbers.power_w,
    moment=numbers.moment,
    when=numbers.iso_moment,
    sig=numbers.sig,
)


def missing_extra(what: str) -> ConfigError:
    return ConfigError(f"{what}: install the dashboard extra first (pip install 'wattwise[dashboard]')")


def _visible(value: Any) -> Any:
    """Every value a template prints, with control and bidirectional characters shown as escapes (as the terminal
    shows them), so a run name cannot reorder or hide what a page says. Markup (the plots) is ours and passes."""
    from markupsafe import Markup

    from wattwise.report.safe import printable

    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return printable(value)


class Pages:
    """The template environment; one per process or per dashboard app (templates compile once)."""

    def __init__(self) -> None:
        try:
            from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
        except ImportError:
            raise missing_extra("HTML reports") from None
        from wattwise import __version__

        self.env: Environment = Environment(
            loader=PackageLoader("wattwise.report", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_visible,
        )
        self.env.globals.update(fmt=FORMATTERS, version=__version__, window_rows=WINDOW_ROWS)

    def render(self, template: str, *, standalone: bool = True, **context: Any) -> str:
        context.setdefault("base", "")
        context.setdefault("store_label", "")
        return self.env.get_template(template).render(standalone=standalone, **context)
