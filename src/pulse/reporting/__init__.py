"""`pulse report`'s HTML report: plots of the model, segment, audience and drift tables, and the tables.

`summary` gives the row counts and champion metrics `pulse report` prints; `data` reads the warehouse
(tolerating tables that do not exist yet), `plots` draws with matplotlib, `html` renders one
self-contained page with Jinja2.
"""

from pulse.reporting.html import REPORT_NAME, write_report

__all__ = ["REPORT_NAME", "write_report"]
