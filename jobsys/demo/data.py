"""The demo application's own tables, its synthetic data and small database helpers.

The demo stores its data in the jobsys database itself (tables prefixed ``demo_``) so
``jobsys demo`` needs nothing but one SQLite file; the same code runs on MySQL/MariaDB.
Jobs import this module lazily: SQLAlchemy is not loaded when the CLI only lists jobs.

Time in the demo is a day number, not the wall clock: the data ends on day ``TODAY``,
so every job run computes the same result from the same data (tests rely on it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

T = TypeVar("T")

TODAY = 400  # the demo's "current day"; seeded history covers days 0..399
N_PROFILES = 3000
SEED = 42
SEED_MARKER = "seed.version"
SEED_VERSION = 1
CHUNK = 1000  # rows per executemany: bounded packets on MySQL, quick on SQLite

CITIES = (
    "Amsterdam",
    "Berlin",
    "Copenhagen",
    "Dublin",
    "Edinburgh",
    "Florence",
    "Geneva",
    "Helsinki",
    "Lisbon",
    "Madrid",
    "Oslo",
    "Prague",
)
TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
QUESTIONS = (
    ("openness", "I enjoy trying food I have never heard of"),
    ("openness", "A museum is a good first date"),
    ("conscientiousness", "I plan my weekends in advance"),
    ("conscientiousness", "I reply to messages the same day"),
    ("extraversion", "A loud party is my idea of fun"),
    ("extraversion", "I talk to strangers on the train"),
    ("agreeableness", "I let my partner choose the film"),
    ("agreeableness", "I forgive quickly"),
    ("neuroticism", "I worry when a message goes unanswered"),
    ("neuroticism", "Small changes of plan upset me"),
)
INTERESTS = (
    "hiking",
    "cooking",
    "jazz",
    "climbing",
    "photography",
    "cinema",
    "chess",
    "running",
    "yoga",
    "travel",
    "gardening",
    "painting",
    "cycling",
    "baking",
    "theatre",
    "surfing",
    "poetry",
    "boardgames",
    "swimming",
    "dancing",
    "wine",
    "history",
    "astronomy",
    "football",
)
FIRST_NAMES = (
    "Alex",
    "Ana",
    "Ben",
    "Carla",
    "Dan",
    "Eva",
    "Finn",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Mara",
    "Nils",
    "Olga",
    "Paul",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Ugo",
    "Vera",
    "Wim",
    "Yara",
    "Zoe",
)
BIO_OPENERS = ("Curious", "Easy-going", "Bookish", "Sporty", "Creative", "Chatty", "Calm")

metadata = sa.MetaData()

profile = sa.Table(
    "demo_profile",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("gender", sa.String(1), nullable=False),  # f, m, x
    sa.Column("seeking", sa.String(1), nullable=False),  # f, m, a (anyone)
    sa.Column("age", sa.Integer, nullable=False),
    sa.Column("city", sa.String(32), nullable=False, index=True),
    sa.Column("bio", sa.Text, nullable=True),
    sa.Column("interests", sa.String(255), nullable=False),
    sa.Column("joined_day", sa.Integer, nullable=False),
    sa.Column("last_active_day", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("primary_photo_id", sa.Integer, nullable=True),
)

like = sa.Table(
    "demo_like",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("liker_id", sa.Integer, nullable=False),
    sa.Column("likee_id", sa.Integer, nullable=False, index=True),
    sa.Column("day", sa.Integer, nullable=False),
    sa.UniqueConstraint("liker_id", "likee_id", name="uq_demo_like_pair"),
)

match = sa.Table(
    "demo_match",
    metadata,
    sa.Column("profile_a", sa.Integer, primary_key=True, autoincrement=False),  # lower id
    sa.Column("profile_b", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("matched_day", sa.Integer, nullable=False),
)

notification = sa.Table(
    "demo_notification",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ref_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
    sa.UniqueConstraint("profile_id", "kind", "ref_id", name="uq_demo_notification"),
)

photo = sa.Table(
    "demo_photo",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("profile_id", sa.Integer, nullable=False, index=True),
    sa.Column(
        "status", sa.String(12), nullable=False, index=True
    ),  # pending approved rejected purged
    sa.Column("uploaded_day", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=True),  # NULL until media_metadata_extract
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("size_bytes", sa.Integer, nullable=True),
    sa.Column("format", sa.String(8), nullable=True),
    sa.Column("moderation_score", sa.Double, nullable=True),
)

thumbnail = sa.Table(
    "demo_thumbnail",
    metadata,
    sa.Column("photo_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.String(4), primary_key=True),  # sm md lg
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("path", sa.String(255), nullable=False),
)

quiz_question = sa.Table(
    "demo_quiz_question",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("category", sa.String(24), nullable=False),
    sa.Column("text", sa.String(255), nullable=False),
)

quiz_answer = sa.Table(
    "demo_quiz_answer",
    metadata,
    sa.Column("profile_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("question_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Integer, nullable=False),  # 1..5; the seed slips in some bad ones
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("valid", sa.Boolean, nullable=True),  # NULL until quiz_answer_validate
)

trait = sa.Table(
    "demo_trait",
    metadata,
    sa.Column("profile_id", sa.Integer, primary_key=True, autoincrement=False),
    *(sa.Column(name, sa.Double, nullable=False) for name in TRAITS),
    sa.Column("answered", sa.Integer, nullable=False),
)

compatibility = sa.Table(
    "demo_compatibility",
    metadata,
    sa.Column("profile_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("candidate_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("score", sa.Double, nullable=False),
)

search_doc = sa.Table(
    "demo_search_doc",
    metadata,
    sa.Column("profile_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("city", sa.String(32), nullable=False, index=True),
    sa.Column("gender", sa.String(1), nullable=False),
    sa.Column("seeking", sa.String(1), nullable=False),
    sa.Column("age", sa.Integer, nullable=False),
    sa.Column("age_band", sa.String(8), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("has_photo", sa.Boolean, nullable=False),
    sa.Column("popularity", sa.Integer, nullable=False),
    sa.Column("tokens", sa.Text, nullable=False),
)

search_facet = sa.Table(
    "demo_search_facet",
    metadata,
    sa.Column("facet", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(32), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

match_score = sa.Table(
    "demo_match_score",
    metadata,
    sa.Column("profile_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("candidate_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
)

suggestion = sa.Table(
    "demo_suggestion",
    metadata,
    sa.Column("profile_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("candidate_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
)

feed_item = sa.Table(
    "demo_feed_item",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("profile_id", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # suggestion new_match new_photo
    sa.Column("ref_id", sa.Integer, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("created_day", sa.Integer, nullable=False),
    sa.Column("expires_day", sa.Integer, nullable=False, index=True),
)

stat = sa.Table(
    "demo_stat",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
)


# -- engines and schema ----------------------------------------------------------------
def sqlalchemy_url(database_url: str) -> str:
    """jobsys URLs say ``mysql://``; SQLAlchemy needs the driver named (pymysql)."""
    for scheme in ("mysql", "mariadb"):
        if database_url.startswith(scheme + "://"):
            return f"{scheme}+pymysql://" + database_url[len(scheme) + 3 :]
    return database_url


def engine_for(database_url: str) -> Engine:
    """A fresh engine for one job run; the job disposes it when it ends.

    Each run is its own (forked) process, so nothing here is cached at module level:
    a pooled connection inherited across fork would be shared by two processes.
    """
    url = sqlalchemy_url(database_url)
    if url.startswith("sqlite"):
        # jobsys itself writes to the same file: wait for its lock instead of failing.
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url)


def _is_race(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "already exists" in text or "duplicate key name" in text


def ensure_schema(engine: Engine) -> None:
    """Create the demo tables that are missing; two jobs doing it at once is fine."""
    with engine.connect() as conn:
        if set(metadata.tables) <= set(sa.inspect(conn).get_table_names()):
            return  # the usual case: one cheap query, no lock taken
    for attempt in range(3):
        try:
            with engine.connect() as conn:
                _create_tables(conn)
            return
        except DBAPIError as exc:  # another process created a table between check and create
            if not _is_race(exc) or attempt == 2:
                raise


def _create_tables(conn: Connection) -> None:
    """create_all, with racing creators made to wait for each other."""
    if conn.dialect.name == "sqlite":
        # One transaction for all the DDL (one commit, not one per table), with the write
        # lock taken at once, so a racing job waits and then finds the tables there.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        metadata.create_all(conn, checkfirst=True)
        conn.commit()
    elif conn.dialect.name in ("mysql", "mariadb"):
        # DDL is not transactional on MySQL: a named lock (per database) serializes it.
        name = sa.func.left(sa.func.concat("jobsys_demo_schema:", sa.func.database()), 64)
        conn.execute(sa.select(sa.func.get_lock(name, 60)))
        try:
            metadata.create_all(conn, checkfirst=True)
        finally:
            conn.execute(sa.select(sa.func.release_lock(name)))
            conn.commit()
    else:
        metadata.create_all(conn, checkfirst=True)
        conn.commit()


def drop_all(engine: Engine) -> None:
    """Remove every demo table (the tests clean up with it)."""
    metadata.drop_all(engine, checkfirst=True)


def _is_deadlock(exc: DBAPIError) -> bool:
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in (1205, 1213)  # MySQL lock wait timeout, deadlock


def write(engine: Engine, apply: Callable[[Connection], T]) -> T:
    """Run ``apply`` in one transaction; retried when MySQL picks it as a deadlock victim.

    Jobs compute first and write last, in one short transaction, so ``apply`` is cheap to
    repeat; concurrent demo jobs touching one table (e.g. two updates of demo_profile)
    can deadlock on InnoDB, and a retry is the standard answer.
    """
    for attempt in range(4):
        try:
            with engine.begin() as conn:
                return apply(conn)
        except DBAPIError as exc:
            if not _is_deadlock(exc) or attempt == 3:
                raise
    raise AssertionError("unreachable")


def rowcount(engine: Engine, statement: sa.Executable) -> int:
    """Run one UPDATE or DELETE in its own transaction; the number of rows it changed."""
    return write(engine, lambda conn: int(conn.execute(statement).rowcount))


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Bulk insert in chunks (executemany); returns the number of rows."""
    for start in range(0, len(rows), CHUNK):
        conn.execute(table.insert(), list(rows[start : start + CHUNK]))
    return len(rows)


def update_rows(
    conn: Connection, table: sa.Table, key: str, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Update rows by primary key ``key`` with executemany; each row maps ``key`` and values.

    The bind names are prefixed with ``b_`` because SQLAlchemy reserves column names in
    an UPDATE's SET clause.
    """
    if not rows:
        return 0
    columns = [c for c in rows[0] if c != key]
    stmt = (
        table.update()
        .where(table.c[key] == sa.bindparam("b_" + key))
        .values({c: sa.bindparam("b_" + c) for c in columns})
    )
    params = [{"b_" + k: v for k, v in row.items()} for row in rows]
    for start in range(0, len(params), CHUNK):
        conn.execute(stmt, params[start : start + CHUNK])
    return len(rows)


def replace_stats(conn: Connection, prefix: str, values: Mapping[str, float]) -> int:
    """Replace the demo_stat rows under ``prefix`` (e.g. ``quiz.``) with ``values``."""
    conn.execute(stat.delete().where(stat.c.key.like(prefix + "%")))
    rows = [{"key": k, "value": float(v), "day": TODAY} for k, v in sorted(values.items())]
    return insert_rows(conn, stat, rows)


def count(conn: Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if where:
        query = query.where(*where)
    return int(conn.execute(query).scalar_one())


# -- deterministic helpers -------------------------------------------------------------
def stable_hash(*parts: int) -> int:
    """FNV-1a over integers: a stand-in for "what the image service said" that never varies."""
    h = 2166136261
    for part in parts:
        h = ((h ^ (part & 0xFFFFFFFF)) * 16777619) & 0xFFFFFFFF
    return h


def compatible(gender_a: str, seeking_a: str, gender_b: str, seeking_b: str) -> bool:
    """Each one is looking for the other's gender (or for anyone)."""
    return seeking_a in ("a", gender_b) and seeking_b in ("a", gender_a)


def age_band(age: int) -> str:
    for low, high in ((18, 24), (25, 29), (30, 34), (35, 44), (45, 54)):
        if low <= age <= high:
            return f"{low}-{high}"
    return "55+"


# -- seeding ---------------------------------------------------------------------------
def generate(n_profiles: int = N_PROFILES, seed: int = SEED) -> dict[str, list[dict[str, Any]]]:
    """The synthetic dating site, as rows per table name; the same every time."""
    rng = random.Random(seed)
    profiles: list[dict[str, Any]] = []
    latent: dict[int, list[float]] = {}
    for pid in range(1, n_profiles + 1):
        gender = rng.choices("fmx", weights=(47, 47, 6))[0]
        seeking = {
            "f": rng.choices("mfa", weights=(75, 15, 10))[0],
            "m": rng.choices("fma", weights=(80, 12, 8))[0],
            "x": rng.choices("afm", weights=(70, 15, 15))[0],
        }[gender]
        interests = rng.sample(INTERESTS, rng.randint(2, 5))
        joined = rng.randint(0, TODAY - 20)
        last_active = max(joined, TODAY - 1 - int(rng.expovariate(1 / 30)))
        bio = None
        if rng.random() < 0.8:
            bio = f"{rng.choice(BIO_OPENERS)} soul who loves {interests[0]} and {interests[1]}."
        profiles.append(
            {
                "id": pid,
                "name": f"{rng.choice(FIRST_NAMES)} {chr(65 + rng.randrange(26))}.",
                "gender": gender,
                "seeking": seeking,
                "age": min(70, 18 + int(rng.expovariate(1 / 11))),
                "city": rng.choice(CITIES),
                "bio": bio,
                "interests": ",".join(interests),
                "joined_day": joined,
                "last_active_day": last_active,
                "active": True,
                "primary_photo_id": None,
            }
        )
        latent[pid] = [rng.random() for _ in TRAITS]

    by_city: dict[str, list[int]] = {}
    for p in profiles:
        by_city.setdefault(p["city"], []).append(p["id"])

    # Likes: mostly within the city; some are returned, which makes mutual matches.
    pairs: dict[tuple[int, int], int] = {}
    for p in profiles:
        for _ in range(rng.randint(0, 8)):
            pool = by_city[p["city"]] if rng.random() < 0.8 else range(1, n_profiles + 1)
            other = rng.choice(pool)
            if other != p["id"]:
                pairs.setdefault((p["id"], other), TODAY - 1 - rng.randrange(90))
    for (liker, likee), day in list(pairs.items()):
        if rng.random() < 0.12:
            pairs.setdefault((likee, liker), min(TODAY - 1, day + rng.randrange(5)))
    likes = [{"liker_id": a, "likee_id": b, "day": d} for (a, b), d in pairs.items()]
    # Deleted accounts leave dangling likes behind: orphan_record_cleanup removes them.
    for _ in range(25):
        likes.append(
            {
                "liker_id": rng.randint(1, n_profiles),
                "likee_id": n_profiles + rng.randint(1, 50),
                "day": TODAY - 1 - rng.randrange(90),
            }
        )

    photos: list[dict[str, Any]] = []
    thumbnails: list[dict[str, Any]] = []
    owners = [
        p for p in profiles for _ in range(rng.choices((0, 1, 2, 3), weights=(15, 35, 30, 20))[0])
    ]
    owners += [{"id": n_profiles + rng.randint(1, 50), "joined_day": 0} for _ in range(10)]
    for photo_id, owner in enumerate(owners, start=1):
        uploaded = max(owner["joined_day"], TODAY - 1 - int(rng.expovariate(1 / 40)))
        row: dict[str, Any] = {
            "id": photo_id,
            "profile_id": owner["id"],
            "status": "pending",
            "uploaded_day": uploaded,
            "width": None,
            "height": None,
            "size_bytes": None,
            "format": None,
            "moderation_score": None,
        }
        if uploaded < TODAY - 10:  # older uploads were processed before the demo starts
            width, height = rng.choice(((1080, 1350), (1440, 1080), (2048, 2048), (3024, 4032)))
            row.update(
                width=width,
                height=height,
                size_bytes=width * height // 6,
                format="jpg",
                moderation_score=round(rng.random() * 0.9, 3),
                status="rejected" if rng.random() < 0.03 else "approved",
            )
            if row["status"] == "rejected":  # thumbnails made before a user reported it
                for size, side in (("sm", 160), ("md", 480)):
                    thumbnails.append(
                        {
                            "photo_id": photo_id,
                            "size": size,
                            "width": side,
                            "height": side,
                            "path": f"thumbs/{owner['id']}/{photo_id}_{size}.jpg",
                        }
                    )
        photos.append(row)

    questions = [{"id": i, "category": c, "text": t} for i, (c, t) in enumerate(QUESTIONS, start=1)]
    answers: list[dict[str, Any]] = []
    quiz_takers = [p for p in profiles if rng.random() < 0.7]
    quiz_takers += [{"id": n_profiles + rng.randint(1, 50), "joined_day": 0} for _ in range(4)]
    for p in quiz_takers:
        traits = latent.get(p["id"]) or [0.5] * len(TRAITS)
        day = rng.randint(p["joined_day"], TODAY - 1)
        for qid, (category, _) in enumerate(QUESTIONS, start=1):
            if rng.random() >= 0.9:
                continue
            value = round(1 + 4 * traits[TRAITS.index(category)] + rng.gauss(0, 0.6))
            value = min(5, max(1, value))
            if rng.random() < 0.015:  # a buggy client sent out-of-range answers
                value = rng.choice((0, 6, 9))
            answers.append(
                {
                    "profile_id": p["id"],
                    "question_id": qid,
                    "value": value,
                    "day": day,
                    "valid": None,
                }
            )

    feed = []
    for _ in range(800):  # yesterday's feeds; most have expired by TODAY
        created = TODAY - rng.randint(1, 20)
        feed.append(
            {
                "profile_id": rng.randint(1, n_profiles),
                "kind": "suggestion",
                "ref_id": rng.randint(1, n_profiles),
                "score": round(rng.random(), 4),
                "created_day": created,
                "expires_day": created + 7,
            }
        )

    return {
        profile.name: profiles,
        like.name: likes,
        photo.name: photos,
        thumbnail.name: thumbnails,
        quiz_question.name: questions,
        quiz_answer.name: answers,
        feed_item.name: feed,
    }


def seed_if_empty(engine: Engine, n_profiles: int = N_PROFILES) -> dict[str, int] | None:
    """Fill the demo tables when demo_profile is empty; return the row counts, or None.

    The marker row in demo_stat is inserted first in the same transaction: a second job
    seeding at the same moment blocks on it, then hits the duplicate key and backs off.
    """
    with engine.connect() as conn:
        if count(conn, profile) > 0:
            return None
    rows = generate(n_profiles)

    def apply(conn: Connection) -> dict[str, int]:
        conn.execute(stat.insert(), {"key": SEED_MARKER, "value": SEED_VERSION, "day": TODAY})
        return {
            name: insert_rows(conn, metadata.tables[name], table_rows)
            for name, table_rows in rows.items()
        }

    for _ in range(2):
        try:
            return write(engine, apply)
        except IntegrityError:
            with engine.connect() as conn:
                if count(conn, profile) > 0:
                    return None  # another job seeded meanwhile
            # A marker without profiles: someone emptied the tables by hand. Start over.
            with engine.begin() as conn:
                conn.execute(stat.delete().where(stat.c.key == SEED_MARKER))
    return None


def ensure_ready(engine: Engine) -> dict[str, int] | None:
    """Tables exist and hold data; returns the seeded row counts when this call seeded."""
    ensure_schema(engine)
    return seed_if_empty(engine)


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
