"""A job whose params declare limits (choices, minimum/maximum, pattern), in both
spellings the UI's form understands (for the CLI tests of server-side param checks)."""

from typing import Any

from jobsys import App

app = App("limits")


@app.job(
    group="reports",
    params={
        "region": {"type": "string", "default": "all", "choices": ["all", "eu", "us"]},
        "tier": {"type": "string", "enum": ["free", "paid"]},
        "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
        "ratio": {"type": "number", "min": 0, "max": 1},
        "day": {"type": "string", "pattern": r"\d{4}-\d\d-\d\d"},
    },
)
def report(ctx: Any) -> None:
    ctx.log.info(f"report with {ctx.params}")
