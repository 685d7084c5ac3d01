"""An application with a dependency cycle: every subcommand that loads it must exit 2."""

from jobsys import App

app = App()


@app.job(group="g", depends_on=["b"])
def a(ctx: object) -> None: ...


@app.job(group="g", depends_on=["c"])
def b(ctx: object) -> None: ...


@app.job(group="g", depends_on=["a"])
def c(ctx: object) -> None: ...
