"""Alembic environment for clipsearch libraries (SQLite, batch mode for ALTERs).

clipsearch runs these migrations itself when it opens a library. To write a new one:

    alembic -c migrations/alembic.ini -x db=/path/to/library/clipsearch.db \
        revision --autogenerate -m "what changed"
"""

from alembic import context
from sqlalchemy import create_engine

from clipsearch.store.tables import include_object, metadata

config = context.config
target_metadata = metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    db = context.get_x_argument(as_dictionary=True).get("db")
    if not db:
        raise SystemExit("pass the database to migrate: -x db=/path/to/clipsearch.db")
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        _run(conn)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
