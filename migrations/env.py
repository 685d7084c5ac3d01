"""Alembic environment for jobsys (run by ``jobsys.store.migrate``, not by alembic's CLI).

Online: the caller puts an open connection in ``config.attributes["connection"]`` and owns
its transaction. Offline (``--sql``): set ``sqlalchemy.url`` in the config to render SQL.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import jobsys.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from jobsys.store.migrate import VERSION_TABLE

target_metadata = SQLModel.metadata
config = context.config


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("offline migrations need sqlalchemy.url in the alembic config")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "jobsys migrations run through jobsys.store.migrate (`jobsys migrate`), which "
            'passes a connection in config.attributes["connection"]'
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things: alembic rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
