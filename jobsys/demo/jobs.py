"""The demo application: a dating site's background jobs and their schedules.

Twenty-five small jobs in six groups, with real dependency chains (``a -> b``: b needs a)::

    demo_data_seed -> inactive_profile_sweep -> profile_search_index -> search_facet_counts
    profile_search_index + orphan_record_cleanup -> search_popularity_rank
    quiz_answer_validate -> quiz_trait_build -> quiz_compatibility_update
    quiz_compatibility_update + search_popularity_rank -> match_score_update
    orphan_record_cleanup -> mutual_match_detect -> match_notification_send
    match_score_update + mutual_match_detect -> match_queue_build
    media_metadata_extract -> media_moderation_scan -> photo_thumbnail_generate
                                                    -> primary_photo_select
    feed_expire_items + match_queue_build + thumbnails + primary photos -> feed_refresh
    feed_refresh -> feed_activity_items -> ... -> daily_stats_rollup (runs last)

Every job works on the demo's own tables (``jobsys.demo.data``) in the jobsys database:
read, compute in memory (reporting progress and stopping when cancelled), then write in
one short transaction, and log what changed. No log line or progress report is sent
while a write transaction is open, so a job never holds the SQLite lock while jobsys
itself waits to record its logs. Any job run alone seeds the data first if needed.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from jobsys.definitions import App, JobContext

if TYPE_CHECKING:  # SQLAlchemy is imported by the jobs only, when they run
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

app = App("demo")


class _Cancelled(Exception):
    """Raised inside a job when the admin cancelled it; ``_database`` ends the run quietly."""


def _engine(ctx: JobContext) -> Engine:
    """An engine on the jobsys database (``mysql://`` becomes ``mysql+pymysql://``)."""
    from jobsys.demo import data

    return data.engine_for(ctx.database_url)


@contextmanager
def _database(ctx: JobContext) -> Iterator[Engine]:
    """The demo data, ready to use; disposed afterwards; a cancel ends the job cleanly."""
    from jobsys.demo import data

    engine = _engine(ctx)
    try:
        seeded = data.ensure_ready(engine)
        if seeded:
            ctx.log.info(f"demo data was empty: seeded {_describe(seeded)}")
        yield engine
    except _Cancelled:
        ctx.log.warning("cancel requested: stopped early, before the next write")
    finally:
        engine.dispose()


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name.removeprefix('demo_')} rows" for name, n in counts.items())


def _check(ctx: JobContext) -> None:
    if ctx.cancelled:
        raise _Cancelled


def _each(ctx: JobContext, items: Sequence[T], reports: int = 4) -> Iterator[T]:
    """Iterate, reporting progress ``reports`` times and checking for cancel as it goes."""
    total = len(items)
    step = max(1, math.ceil(total / reports))
    for i, item in enumerate(items):
        if i % 50 == 0:
            _check(ctx)
        if i % step == 0:
            ctx.progress(i, total)
        yield item
    if total:
        ctx.progress(total, total)
    else:  # nothing to do counts as one finished step: a total of 0 has no percentage
        ctx.progress(1, 1)


def _read(engine: Engine, query: Any) -> list[Any]:
    """All rows of one query, with the connection closed before any computing starts."""
    with engine.connect() as conn:
        return list(conn.execute(query).all())


# ======================================================================================
# maintenance
# ======================================================================================
@app.job(
    group="maintenance",
    description="Create the demo tables and fill them with a synthetic dating site",
    timeout="10m",
)
def demo_data_seed(ctx: JobContext) -> None:
    """Create missing demo tables; seed 3,000 profiles, likes, photos and quiz answers."""
    from jobsys.demo import data

    ctx.progress(0, 2)
    with _database(ctx) as engine:  # ensure_ready creates and seeds when empty
        ctx.progress(1, 2)
        with engine.connect() as conn:
            counts = {t.name: data.count(conn, t) for t in data.metadata.sorted_tables}
        ctx.progress(2, 2)
        ctx.log.info(f"demo data ready: {_describe({k: v for k, v in counts.items() if v})}")


@app.job(
    group="maintenance",
    depends_on=["demo_data_seed"],
    description="Mark profiles idle for more than 60 days as inactive",
    timeout="5m",
)
def inactive_profile_sweep(ctx: JobContext) -> None:
    from jobsys.demo import data

    P = data.profile
    cutoff = data.TODAY - 60
    with _database(ctx) as engine:
        ctx.progress(0, 2)
        _check(ctx)

        def apply(conn: Connection) -> tuple[int, int]:
            off = conn.execute(
                P.update()
                .where(P.c.active.is_(True), P.c.last_active_day < cutoff)
                .values(active=False)
            ).rowcount
            on = conn.execute(
                P.update()
                .where(P.c.active.is_(False), P.c.last_active_day >= cutoff)
                .values(active=True)
            ).rowcount
            return off, on

        off, on = data.write(engine, apply)
        ctx.progress(1, 2)
        with engine.connect() as conn:
            active = data.count(conn, P, P.c.active.is_(True))
        ctx.progress(2, 2)
        ctx.log.info(f"deactivated {off} idle profiles, reactivated {on}; {active} profiles active")


@app.job(
    group="maintenance",
    depends_on=["demo_data_seed"],
    description="Delete likes, photos and quiz answers left behind by deleted accounts",
    timeout="5m",
)
def orphan_record_cleanup(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    L, Ph, A, Th = data.like, data.photo, data.quiz_answer, data.thumbnail
    profile_ids = sa.select(data.profile.c.id)
    gone = sa.or_(L.c.liker_id.not_in(profile_ids), L.c.likee_id.not_in(profile_ids))
    orphan_photos = sa.select(Ph.c.id).where(Ph.c.profile_id.not_in(profile_ids))
    deletes = [  # thumbnails before their photos
        ("likes", L.delete().where(gone)),
        ("thumbnails", Th.delete().where(Th.c.photo_id.in_(orphan_photos))),
        ("photos", Ph.delete().where(Ph.c.profile_id.not_in(profile_ids))),
        ("quiz answers", A.delete().where(A.c.profile_id.not_in(profile_ids))),
    ]
    with _database(ctx) as engine:
        removed: dict[str, int] = {}
        for i, (what, statement) in enumerate(deletes):
            _check(ctx)
            ctx.progress(i, len(deletes))
            removed[what] = data.rowcount(engine, statement)
        ctx.progress(len(deletes), len(deletes))
        ctx.log.info("removed orphans: " + ", ".join(f"{n} {what}" for what, n in removed.items()))


@app.job(
    group="maintenance",
    depends_on=["demo_data_seed"],
    description="Check the demo data's integrity; set fail=true to see a failed run",
    timeout="5m",
    params={
        "fail": {
            "type": "boolean",
            "default": False,
            "description": "raise an error to show failure handling",
        }
    },
)
def demo_flaky_job(ctx: JobContext) -> None:
    """Counts every demo table and dangling reference; fails on request."""
    import sqlalchemy as sa

    from jobsys.demo import data

    with _database(ctx) as engine:
        tables = list(data.metadata.sorted_tables)
        counts: dict[str, float] = {}
        with engine.connect() as conn:
            for table in _each(ctx, tables):
                counts[f"integrity.rows.{table.name.removeprefix('demo_')}"] = data.count(
                    conn, table
                )
            dangling = data.count(
                conn, data.like, data.like.c.likee_id.not_in(sa.select(data.profile.c.id))
            )
        counts["integrity.dangling_likes"] = dangling
        ctx.log.info(f"checked {len(tables)} tables; {dangling} likes point at deleted profiles")
        if dangling:
            ctx.log.warning("dangling likes found: orphan_record_cleanup removes them")
        if ctx.params.get("fail", False):
            ctx.log.error("params.fail is true: failing on purpose")
            raise RuntimeError("demo_flaky_job was asked to fail (params.fail=true)")
        _check(ctx)
        data.write(engine, lambda conn: data.replace_stats(conn, "integrity.", counts))
        ctx.log.info(f"recorded {len(counts)} integrity figures")


@app.job(
    group="maintenance",
    description="Sleep delay_ms in small steps, reporting progress (for latency and cancel demos)",
    timeout="1h",
    params={
        "delay_ms": {
            "type": "integer",
            "default": 0,
            "description": "how long to run, in milliseconds",
        }
    },
)
def demo_slow_job(ctx: JobContext) -> None:
    """Stands in for a long job; deliberately touches no table, so it never waits on a lock."""
    delay_ms = max(0, int(ctx.params.get("delay_ms", 0)))
    total = max(1, delay_ms)  # progress in ms; never a total of 0
    ctx.log.info(f"working for {delay_ms} ms")
    start = time.monotonic()
    deadline = start + delay_ms / 1000
    reported, last_report = -1, start
    while True:
        now = time.monotonic()
        done = min(delay_ms, int((now - start) * 1000))
        if ctx.cancelled:
            ctx.log.warning(f"cancel requested after {done} of {delay_ms} ms: stopping")
            return
        # A report per tenth of the work, and at least one every half second.
        if done * 10 // total != reported or now - last_report >= 0.5:
            reported, last_report = done * 10 // total, now
            ctx.progress(done, total)
        if now >= deadline:
            break
        time.sleep(min(0.05, deadline - now))
    ctx.progress(total, total)
    ctx.log.info(f"done after {int((time.monotonic() - start) * 1000)} ms")


# ======================================================================================
# search
# ======================================================================================
@app.job(
    group="search",
    depends_on=["demo_data_seed", "inactive_profile_sweep"],
    description="Update search indexes for all profiles",
    timeout="15m",
)
def profile_search_index(ctx: JobContext) -> None:
    """Rebuild demo_search_doc from the profiles (keeping each doc's popularity)."""
    import sqlalchemy as sa

    from jobsys.demo import data

    P, D = data.profile, data.search_doc
    with _database(ctx) as engine:
        profiles = _read(
            engine,
            sa.select(
                P.c.id,
                P.c.name,
                P.c.gender,
                P.c.seeking,
                P.c.age,
                P.c.city,
                P.c.bio,
                P.c.interests,
                P.c.active,
            ).order_by(P.c.id),
        )
        with engine.connect() as conn:
            with_photo = set(
                conn.execute(
                    sa.select(data.photo.c.profile_id)
                    .where(data.photo.c.status == "approved")
                    .distinct()
                )
                .scalars()
                .all()
            )
            popularity: dict[int, int] = {
                pid: n for pid, n in conn.execute(sa.select(D.c.profile_id, D.c.popularity))
            }
        docs = []
        for p in _each(ctx, profiles):
            words = f"{p.name} {p.city} {p.interests.replace(',', ' ')} {p.bio or ''}".lower()
            tokens = sorted({w.strip(".,!?") for w in words.split() if len(w.strip(".,!?")) >= 3})
            docs.append(
                {
                    "profile_id": p.id,
                    "city": p.city,
                    "gender": p.gender,
                    "seeking": p.seeking,
                    "age": p.age,
                    "age_band": data.age_band(p.age),
                    "active": bool(p.active),
                    "has_photo": p.id in with_photo,
                    "popularity": popularity.get(p.id, 0),
                    "tokens": " ".join(tokens),
                }
            )
        _check(ctx)

        def apply(conn: Connection) -> int:
            conn.execute(D.delete())
            return data.insert_rows(conn, D, docs)

        n = data.write(engine, apply)
        active = sum(1 for d in docs if d["active"])
        ctx.log.info(
            f"indexed {n} profiles ({active} active, {len(with_photo)} with an approved photo)"
        )


@app.job(
    group="search",
    depends_on=["profile_search_index", "orphan_record_cleanup"],
    description="Rank search results by likes received in the last 30 days",
    timeout="15m",
)
def search_popularity_rank(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    L, D = data.like, data.search_doc
    with _database(ctx) as engine:
        received = dict(
            _read(
                engine,
                sa.select(L.c.likee_id, sa.func.count())
                .where(L.c.day >= data.TODAY - 30)
                .group_by(L.c.likee_id),
            )
        )
        docs = _read(engine, sa.select(D.c.profile_id, D.c.popularity).order_by(D.c.profile_id))
        changes = []
        for doc in _each(ctx, docs):
            new = int(received.get(doc.profile_id, 0))
            if new != doc.popularity:
                changes.append({"profile_id": doc.profile_id, "popularity": new})
        _check(ctx)
        data.write(engine, lambda conn: data.update_rows(conn, D, "profile_id", changes))
        top = max(received.values(), default=0)
        ctx.log.info(
            f"popularity changed for {len(changes)} of {len(docs)} docs; "
            f"most liked profile has {top} likes"
        )


@app.job(
    group="search",
    depends_on=["profile_search_index"],
    description="Count active profiles per city, age band and gender for search filters",
    timeout="5m",
)
def search_facet_counts(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    D, F = data.search_doc, data.search_facet
    facets = ["city", "age_band", "gender"]
    with _database(ctx) as engine:
        rows: list[dict[str, Any]] = []
        for facet in _each(ctx, facets):
            column = D.c[facet]
            found = _read(
                engine,
                sa.select(column, sa.func.count())
                .where(D.c.active.is_(True))
                .group_by(column)
                .order_by(column),
            )
            rows.extend({"facet": facet, "value": value, "count": n} for value, n in found)

        def apply(conn: Connection) -> int:
            conn.execute(F.delete())
            return data.insert_rows(conn, F, rows)

        data.write(engine, apply)
        ctx.log.info(f"wrote {len(rows)} facet values for {', '.join(facets)}")


# ======================================================================================
# quiz
# ======================================================================================
@app.job(
    group="quiz",
    depends_on=["demo_data_seed"],
    description="Flag quiz answers outside the 1-5 scale as invalid",
    timeout="5m",
)
def quiz_answer_validate(ctx: JobContext) -> None:
    from jobsys.demo import data

    A = data.quiz_answer
    with _database(ctx) as engine:
        ctx.progress(0, 1)
        _check(ctx)

        def apply(conn: Connection) -> tuple[int, int]:
            ok = conn.execute(
                A.update().where(A.c.valid.is_(None), A.c.value.between(1, 5)).values(valid=True)
            ).rowcount
            bad = conn.execute(A.update().where(A.c.valid.is_(None)).values(valid=False)).rowcount
            return ok, bad

        ok, bad = data.write(engine, apply)
        ctx.progress(1, 1)
        ctx.log.info(f"validated {ok + bad} new answers: {ok} valid, {bad} out of range")


@app.job(
    group="quiz",
    depends_on=["quiz_answer_validate", "orphan_record_cleanup"],
    description="Build personality trait scores from valid quiz answers",
    timeout="15m",
)
def quiz_trait_build(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    A, Q = data.quiz_answer, data.quiz_question
    with _database(ctx) as engine:
        answers = _read(
            engine,
            sa.select(A.c.profile_id, Q.c.category, A.c.value)
            .join(Q, Q.c.id == A.c.question_id)
            .where(A.c.valid.is_(True))
            .order_by(A.c.profile_id, A.c.question_id),
        )
        per_profile: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for a in _each(ctx, answers):
            per_profile[a.profile_id][a.category].append(a.value)
        rows: list[dict[str, Any]] = []
        for pid, by_trait in sorted(per_profile.items()):
            answered = sum(len(v) for v in by_trait.values())
            if answered < 6:  # too few answers to say anything
                continue
            row: dict[str, Any] = {"profile_id": pid, "answered": answered}
            for name in data.TRAITS:
                values = by_trait.get(name)
                row[name] = round((sum(values) / len(values) - 1) / 4, 4) if values else 0.5
            rows.append(row)
        _check(ctx)

        def apply(conn: Connection) -> int:
            conn.execute(data.trait.delete())
            return data.insert_rows(conn, data.trait, rows)

        data.write(engine, apply)
        ctx.log.info(
            f"built traits for {len(rows)} of {len(per_profile)} quiz takers (6+ valid answers)"
        )


@app.job(
    group="quiz",
    depends_on=["quiz_answer_validate"],
    description="Per-question answer counts, averages and invalid rates",
    timeout="5m",
)
def quiz_completion_stats(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    A = data.quiz_answer
    with _database(ctx) as engine:
        per_question = _read(
            engine,
            sa.select(
                A.c.question_id,
                sa.func.count(),
                sa.func.sum(sa.case((A.c.valid.is_(False), 1), else_=0)),
                sa.func.avg(sa.case((A.c.valid.is_(True), A.c.value), else_=None)),
            )
            .group_by(A.c.question_id)
            .order_by(A.c.question_id),
        )
        takers = _read(engine, sa.select(sa.func.count(sa.distinct(A.c.profile_id))))[0][0]
        with engine.connect() as conn:
            profiles = data.count(conn, data.profile)
        stats: dict[str, float] = {}
        for qid, answers, invalid, mean in _each(ctx, per_question):
            stats[f"quiz.q{qid:02d}.answers"] = answers
            stats[f"quiz.q{qid:02d}.invalid"] = int(invalid or 0)
            stats[f"quiz.q{qid:02d}.mean"] = round(float(mean or 0), 3)
        stats["quiz.takers"] = takers
        stats["quiz.completion_rate"] = round(takers / profiles, 4) if profiles else 0.0
        _check(ctx)
        data.write(engine, lambda conn: data.replace_stats(conn, "quiz.", stats))
        ctx.log.info(
            f"stats for {len(per_question)} questions; "
            f"{takers} of {profiles} profiles took the quiz"
        )


@app.job(
    group="quiz",
    depends_on=["quiz_trait_build", "profile_search_index"],
    description="Quiz compatibility between nearby, mutually interested profiles",
    timeout="30m",
)
def quiz_compatibility_update(ctx: JobContext) -> None:
    """For each active quiz taker: the 8 most compatible candidates in the same city."""
    import sqlalchemy as sa

    from jobsys.demo import data

    D, Tr = data.search_doc, data.trait
    with _database(ctx) as engine:
        people = _read(
            engine,
            sa.select(
                D.c.profile_id,
                D.c.city,
                D.c.gender,
                D.c.seeking,
                D.c.age,
                *(Tr.c[t] for t in data.TRAITS),
            )
            .join(Tr, Tr.c.profile_id == D.c.profile_id)
            .where(D.c.active.is_(True))
            .order_by(D.c.profile_id),
        )
        # Per city, sorted by age, so each person only looks at the +-8 years window.
        by_city: dict[str, list[tuple[int, int, str, str, tuple[float, ...]]]] = defaultdict(list)
        for p in people:
            vector = tuple(getattr(p, t) for t in data.TRAITS)
            by_city[p.city].append((p.age, p.profile_id, p.gender, p.seeking, vector))
        rows: list[dict[str, Any]] = []
        scale = math.sqrt(len(data.TRAITS))
        for city in _each(ctx, sorted(by_city)):
            group = sorted(by_city[city])
            ages = [g[0] for g in group]
            for age, pid, gender, seeking, mine in group:
                _check(ctx)
                window = group[
                    bisect.bisect_left(ages, age - 8) : bisect.bisect_right(ages, age + 8)
                ]
                scored = [
                    (round(1 - math.dist(mine, theirs) / scale, 4), other)
                    for _, other, their_gender, their_seeking, theirs in window
                    if other != pid
                    and data.compatible(gender, seeking, their_gender, their_seeking)
                ]
                scored.sort(key=lambda s: (-s[0], s[1]))
                rows.extend(
                    {"profile_id": pid, "candidate_id": c, "score": s} for s, c in scored[:8]
                )
        rows.sort(key=lambda r: (r["profile_id"], r["candidate_id"]))

        def apply(conn: Connection) -> int:
            conn.execute(data.compatibility.delete())
            return data.insert_rows(conn, data.compatibility, rows)

        data.write(engine, apply)
        ctx.log.info(
            f"{len(rows)} compatibility pairs for {len(people)} active quiz takers "
            f"in {len(by_city)} cities"
        )


# ======================================================================================
# matching
# ======================================================================================
@app.job(
    group="matching",
    depends_on=["profile_search_index", "quiz_compatibility_update", "search_popularity_rank"],
    description="Calculate match scores between users",
    timeout="30m",
)
def match_score_update(ctx: JobContext) -> None:
    """Score = 60% quiz compatibility + 25% age closeness + 15% candidate popularity."""
    import sqlalchemy as sa

    from jobsys.demo import data

    C, D = data.compatibility, data.search_doc
    with _database(ctx) as engine:
        pairs = _read(
            engine,
            sa.select(C.c.profile_id, C.c.candidate_id, C.c.score).order_by(
                C.c.profile_id, C.c.candidate_id
            ),
        )
        docs = {
            d.profile_id: d
            for d in _read(engine, sa.select(D.c.profile_id, D.c.age, D.c.popularity))
        }
        top = max((d.popularity for d in docs.values()), default=0) or 1
        scored: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for pid, cid, compat in _each(ctx, pairs):
            me, other = docs.get(pid), docs.get(cid)
            if me is None or other is None:
                continue
            closeness = 1 - min(abs(me.age - other.age), 8) / 8
            score = 0.6 * compat + 0.25 * closeness + 0.15 * other.popularity / top
            scored[pid].append((round(score, 4), cid))
        rows: list[dict[str, Any]] = []
        for pid, options in sorted(scored.items()):
            options.sort(key=lambda s: (-s[0], s[1]))
            rows.extend(
                {"profile_id": pid, "candidate_id": cid, "score": s, "rank": r}
                for r, (s, cid) in enumerate(options, start=1)
            )
        _check(ctx)

        def apply(conn: Connection) -> int:
            conn.execute(data.match_score.delete())
            return data.insert_rows(conn, data.match_score, rows)

        data.write(engine, apply)
        mean = sum(r["score"] for r in rows) / len(rows) if rows else 0.0
        ctx.log.info(f"scored {len(rows)} pairs for {len(scored)} profiles (mean score {mean:.3f})")


@app.job(
    group="matching",
    depends_on=["orphan_record_cleanup"],
    description="Turn mutual likes into matches",
    timeout="15m",
)
def mutual_match_detect(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    l1, l2, M = data.like.alias("l1"), data.like.alias("l2"), data.match
    with _database(ctx) as engine:
        mutual = _read(
            engine,
            sa.select(l1.c.liker_id, l1.c.likee_id, l1.c.day, l2.c.day)
            .join(l2, sa.and_(l2.c.liker_id == l1.c.likee_id, l2.c.likee_id == l1.c.liker_id))
            .where(l1.c.liker_id < l1.c.likee_id)
            .order_by(l1.c.liker_id, l1.c.likee_id),
        )
        existing = {tuple(r) for r in _read(engine, sa.select(M.c.profile_a, M.c.profile_b))}
        new = []
        for a, b, day_a, day_b in _each(ctx, mutual):
            if (a, b) not in existing:
                new.append({"profile_a": a, "profile_b": b, "matched_day": max(day_a, day_b)})
        _check(ctx)
        data.write(engine, lambda conn: data.insert_rows(conn, M, new))
        ctx.log.info(f"found {len(mutual)} mutual likes: {len(new)} new matches")


@app.job(
    group="matching",
    depends_on=["mutual_match_detect"],
    description="Notify both people of each new match",
    timeout="15m",
)
def match_notification_send(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    M, N = data.match, data.notification
    with _database(ctx) as engine:
        matches = _read(engine, sa.select(M).order_by(M.c.profile_a, M.c.profile_b))
        sent = {
            tuple(r)
            for r in _read(engine, sa.select(N.c.profile_id, N.c.ref_id).where(N.c.kind == "match"))
        }
        new = []
        for m in _each(ctx, matches):
            for me, other in ((m.profile_a, m.profile_b), (m.profile_b, m.profile_a)):
                if (me, other) not in sent:
                    new.append(
                        {"profile_id": me, "kind": "match", "ref_id": other, "day": m.matched_day}
                    )
        _check(ctx)
        data.write(engine, lambda conn: data.insert_rows(conn, N, new))
        ctx.log.info(f"sent {len(new)} match notifications ({len(matches)} matches in all)")


@app.job(
    group="matching",
    depends_on=["match_score_update", "mutual_match_detect"],
    description="Queue each user's top 5 suggestions, leaving out people already liked",
    timeout="15m",
)
def match_queue_build(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    S, L, M = data.match_score, data.like, data.match
    with _database(ctx) as engine:
        scores = _read(
            engine,
            sa.select(S.c.profile_id, S.c.candidate_id, S.c.score).order_by(
                S.c.profile_id, S.c.rank
            ),
        )
        seen = {tuple(r) for r in _read(engine, sa.select(L.c.liker_id, L.c.likee_id))}
        for a, b in _read(engine, sa.select(M.c.profile_a, M.c.profile_b)):
            seen.update(((a, b), (b, a)))
        rows: list[dict[str, Any]] = []
        position: dict[int, int] = defaultdict(int)
        for pid, cid, score in _each(ctx, scores):
            if (pid, cid) in seen or position[pid] >= 5:
                continue
            position[pid] += 1
            rows.append(
                {"profile_id": pid, "candidate_id": cid, "position": position[pid], "score": score}
            )
        _check(ctx)

        def apply(conn: Connection) -> int:
            conn.execute(data.suggestion.delete())
            return data.insert_rows(conn, data.suggestion, rows)

        data.write(engine, apply)
        ctx.log.info(f"queued {len(rows)} suggestions for {len(position)} profiles")


# ======================================================================================
# media
# ======================================================================================
@app.job(
    group="media",
    depends_on=["demo_data_seed"],
    description="Process uploaded media (dimensions, size, format)",
    timeout="15m",
)
def media_metadata_extract(ctx: JobContext) -> None:
    """Fill in metadata for new uploads (derived from the photo id: no real image service)."""
    import sqlalchemy as sa

    from jobsys.demo import data

    Ph = data.photo
    sizes = ((1080, 1350), (1440, 1080), (2048, 2048), (3024, 4032), (640, 480), (320, 240))
    formats = ("jpg", "jpg", "jpg", "png", "heic")
    with _database(ctx) as engine:
        pending = _read(engine, sa.select(Ph.c.id).where(Ph.c.width.is_(None)).order_by(Ph.c.id))
        rows: list[dict[str, Any]] = []
        for (photo_id,) in _each(ctx, pending):
            h = data.stable_hash(photo_id, 1)
            width, height = sizes[h % len(sizes)]
            rows.append(
                {
                    "id": photo_id,
                    "width": width,
                    "height": height,
                    "size_bytes": width * height // (4 + h % 5),
                    "format": formats[(h >> 8) % len(formats)],
                }
            )
        _check(ctx)
        data.write(engine, lambda conn: data.update_rows(conn, Ph, "id", rows))
        ctx.log.info(f"extracted metadata for {len(rows)} new photos")


@app.job(
    group="media",
    depends_on=["media_metadata_extract"],
    description="Approve or reject new photos (automated moderation)",
    timeout="15m",
)
def media_moderation_scan(ctx: JobContext) -> None:
    """Reject photos the (simulated) classifier flags or that are too small to show."""
    import sqlalchemy as sa

    from jobsys.demo import data

    Ph = data.photo
    with _database(ctx) as engine:
        pending = _read(
            engine,
            sa.select(Ph.c.id, Ph.c.width, Ph.c.height)
            .where(Ph.c.status == "pending", Ph.c.width.is_not(None))
            .order_by(Ph.c.id),
        )
        rows: list[dict[str, Any]] = []
        for photo_id, width, height in _each(ctx, pending):
            score = round(data.stable_hash(photo_id, 7) % 1000 / 1000, 3)
            ok = score < 0.92 and min(width, height) >= 400
            rows.append(
                {
                    "id": photo_id,
                    "moderation_score": score,
                    "status": "approved" if ok else "rejected",
                }
            )
        _check(ctx)
        data.write(engine, lambda conn: data.update_rows(conn, Ph, "id", rows))
        rejected = sum(1 for r in rows if r["status"] == "rejected")
        ctx.log.info(
            f"moderated {len(rows)} photos: {len(rows) - rejected} approved, {rejected} rejected"
        )


@app.job(
    group="media",
    depends_on=["media_moderation_scan"],
    description="Generate small, medium and large thumbnails for approved photos",
    timeout="30m",
)
def photo_thumbnail_generate(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    Ph, Th = data.photo, data.thumbnail
    with _database(ctx) as engine:
        todo = _read(
            engine,
            sa.select(Ph.c.id, Ph.c.profile_id, Ph.c.width, Ph.c.height)
            .where(Ph.c.status == "approved", Ph.c.id.not_in(sa.select(Th.c.photo_id)))
            .order_by(Ph.c.id),
        )
        rows: list[dict[str, Any]] = []
        for photo_id, owner, width, height in _each(ctx, todo):
            for size, side in (("sm", 160), ("md", 480), ("lg", 1080)):
                factor = min(1.0, side / max(width, height))
                rows.append(
                    {
                        "photo_id": photo_id,
                        "size": size,
                        "width": max(1, round(width * factor)),
                        "height": max(1, round(height * factor)),
                        "path": f"thumbs/{owner}/{photo_id}_{size}.jpg",
                    }
                )
        _check(ctx)
        data.write(engine, lambda conn: data.insert_rows(conn, Th, rows))
        ctx.log.info(f"generated {len(rows)} thumbnails for {len(todo)} photos")


@app.job(
    group="media",
    depends_on=["media_moderation_scan"],
    description="Choose each profile's primary photo (largest approved)",
    timeout="15m",
)
def primary_photo_select(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    P, Ph = data.profile, data.photo
    with _database(ctx) as engine:
        photos = _read(
            engine,
            sa.select(Ph.c.id, Ph.c.profile_id, Ph.c.width, Ph.c.height)
            .where(Ph.c.status == "approved")
            .order_by(Ph.c.id),
        )
        current = dict(_read(engine, sa.select(P.c.id, P.c.primary_photo_id)))
        best: dict[int, tuple[int, int]] = {}  # profile -> (area, photo id)
        for photo_id, owner, width, height in _each(ctx, photos):
            area = width * height
            if owner not in best or area > best[owner][0]:
                best[owner] = (area, photo_id)
        changes = [
            {"id": pid, "primary_photo_id": best[pid][1] if pid in best else None}
            for pid, now in sorted(current.items())
            if now != (best[pid][1] if pid in best else None)
        ]
        _check(ctx)
        data.write(engine, lambda conn: data.update_rows(conn, P, "id", changes))
        ctx.log.info(f"{len(best)} profiles have a primary photo; {len(changes)} changed")


@app.job(
    group="media",
    depends_on=["media_moderation_scan", "orphan_record_cleanup"],
    description="Purge rejected photos and delete their thumbnails from storage",
    timeout="15m",
)
def media_storage_cleanup(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    Ph, Th = data.photo, data.thumbnail
    with _database(ctx) as engine:
        rejected = [
            r[0]
            for r in _read(
                engine, sa.select(Ph.c.id).where(Ph.c.status == "rejected").order_by(Ph.c.id)
            )
        ]
        freed = 0
        for photo_id in _each(ctx, rejected):  # what a real job would delete from object storage
            freed += data.stable_hash(photo_id, 3) % 200_000
        _check(ctx)

        def apply(conn: Connection) -> int:
            removed = 0
            for part in data.chunks(rejected, 500):  # bounded IN lists
                removed += conn.execute(Th.delete().where(Th.c.photo_id.in_(part))).rowcount
                conn.execute(Ph.update().where(Ph.c.id.in_(part)).values(status="purged"))
            return removed

        removed = data.write(engine, apply)
        ctx.log.info(
            f"purged {len(rejected)} rejected photos, "
            f"deleted {removed} thumbnails (~{freed // 1024} KiB)"
        )


# ======================================================================================
# feed
# ======================================================================================
@app.job(
    group="feed",
    depends_on=["demo_data_seed"],
    description="Delete feed items past their expiry day",
    timeout="5m",
)
def feed_expire_items(ctx: JobContext) -> None:
    from jobsys.demo import data

    F = data.feed_item
    with _database(ctx) as engine:
        ctx.progress(0, 1)
        _check(ctx)
        removed = data.rowcount(engine, F.delete().where(F.c.expires_day < data.TODAY))
        with engine.connect() as conn:
            left = data.count(conn, F)
        ctx.progress(1, 1)
        ctx.log.info(f"expired {removed} feed items; {left} remain")


@app.job(
    group="feed",
    depends_on=[
        "feed_expire_items",
        "match_queue_build",
        "photo_thumbnail_generate",
        "primary_photo_select",
    ],
    description="Refresh personalized feeds for active users",
    timeout="30m",
    params={
        "limit": {"type": "integer", "default": 50, "description": "most suggestions per user"},
        "region": {
            "type": "string",
            "default": "all",
            "description": "'all' or one city, e.g. Berlin",
        },
        "min_score": {
            "type": "number",
            "default": 0.0,
            "description": "leave out weaker suggestions",
        },
        "dry_run": {
            "type": "boolean",
            "default": False,
            "description": "compute and log, write nothing",
        },
    },
)
def feed_refresh(ctx: JobContext) -> None:
    """Rebuild the suggestion items of active users' feeds from the match queue."""
    import sqlalchemy as sa

    from jobsys.demo import data

    limit = int(ctx.params.get("limit", 50))
    region = str(ctx.params.get("region", "all")).strip()
    min_score = float(ctx.params.get("min_score", 0.0))
    dry_run = bool(ctx.params.get("dry_run", False))
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    cities = {c.lower(): c for c in data.CITIES}
    if region.lower() != "all" and region.lower() not in cities:
        raise ValueError(f"unknown region {region!r}: use 'all' or one of {', '.join(data.CITIES)}")
    city = cities.get(region.lower())

    P, S, F = data.profile, data.suggestion, data.feed_item
    with _database(ctx) as engine:
        users_query = sa.select(P.c.id).where(P.c.active.is_(True)).order_by(P.c.id)
        if city:
            users_query = users_query.where(P.c.city == city)
        users = [r[0] for r in _read(engine, users_query)]
        with_photo = {
            r[0] for r in _read(engine, sa.select(P.c.id).where(P.c.primary_photo_id.is_not(None)))
        }
        queue: dict[int, list[Any]] = defaultdict(list)
        for s in _read(
            engine,
            sa.select(S).where(S.c.score >= min_score).order_by(S.c.profile_id, S.c.position),
        ):
            queue[s.profile_id].append(s)
        rows: list[dict[str, Any]] = []
        for pid in _each(ctx, users):
            shown = [s for s in queue.get(pid, []) if s.candidate_id in with_photo][:limit]
            rows.extend(
                {
                    "profile_id": pid,
                    "kind": "suggestion",
                    "ref_id": s.candidate_id,
                    "score": s.score,
                    "created_day": data.TODAY,
                    "expires_day": data.TODAY + 7,
                }
                for s in shown
            )
        where = f"in {city}" if city else "in all regions"
        if dry_run:
            ctx.log.info(
                f"dry run: would write {len(rows)} feed items for {len(users)} users {where}"
            )
            return
        _check(ctx)

        def apply(conn: Connection) -> int:
            old = F.c.kind == "suggestion"
            if city:
                old = sa.and_(old, F.c.profile_id.in_(sa.select(P.c.id).where(P.c.city == city)))
            conn.execute(F.delete().where(old))
            return data.insert_rows(conn, F, rows)

        data.write(engine, apply)
        ctx.log.info(
            f"refreshed feeds of {len(users)} users {where}: "
            f"{len(rows)} suggestions (limit {limit})"
        )


@app.job(
    group="feed",
    depends_on=["feed_refresh", "mutual_match_detect", "photo_thumbnail_generate"],
    description="Post new matches and new photos of liked people to feeds",
    timeout="15m",
)
def feed_activity_items(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    M, Ph, L, F = data.match, data.photo, data.like, data.feed_item
    today = data.TODAY
    with _database(ctx) as engine:
        matches = _read(
            engine,
            sa.select(M)
            .where(M.c.matched_day >= today - 14)
            .order_by(M.c.profile_a, M.c.profile_b),
        )
        photos = _read(
            engine,
            sa.select(Ph.c.id, Ph.c.profile_id, Ph.c.uploaded_day, L.c.liker_id)
            .join(L, L.c.likee_id == Ph.c.profile_id)
            .where(Ph.c.status == "approved", Ph.c.uploaded_day >= today - 3)
            .order_by(Ph.c.id, L.c.liker_id),
        )
        existing = {
            tuple(r)
            for r in _read(
                engine,
                sa.select(F.c.profile_id, F.c.kind, F.c.ref_id).where(F.c.kind != "suggestion"),
            )
        }
        rows: list[dict[str, Any]] = []

        def add(profile_id: int, kind: str, ref_id: int, day: int, days: int) -> None:
            if (profile_id, kind, ref_id) not in existing and day + days >= today:
                existing.add((profile_id, kind, ref_id))
                rows.append(
                    {
                        "profile_id": profile_id,
                        "kind": kind,
                        "ref_id": ref_id,
                        "score": 1.0,
                        "created_day": day,
                        "expires_day": day + days,
                    }
                )

        for m in _each(ctx, matches, reports=2):
            add(m.profile_a, "new_match", m.profile_b, m.matched_day, 14)
            add(m.profile_b, "new_match", m.profile_a, m.matched_day, 14)
        for p in _each(ctx, photos, reports=2):
            add(p.liker_id, "new_photo", p.id, p.uploaded_day, 7)
        _check(ctx)
        data.write(engine, lambda conn: data.insert_rows(conn, F, rows))
        kinds: dict[str, int] = defaultdict(int)
        for r in rows:
            kinds[r["kind"]] += 1
        ctx.log.info(
            f"posted {len(rows)} activity items "
            f"({kinds['new_match']} new matches, {kinds['new_photo']} new photos)"
        )


# ======================================================================================
# reporting (maintenance): runs last in a full sync
# ======================================================================================
@app.job(
    group="maintenance",
    depends_on=[
        "feed_activity_items",
        "match_notification_send",
        "search_facet_counts",
        "quiz_completion_stats",
        "media_storage_cleanup",
    ],
    description="Roll up the day's key figures into demo_stat",
    timeout="15m",
)
def daily_stats_rollup(ctx: JobContext) -> None:
    import sqlalchemy as sa

    from jobsys.demo import data

    P, Ph = data.profile, data.photo
    figures: list[tuple[str, Any]] = [
        ("profiles.total", sa.select(sa.func.count()).select_from(P)),
        ("profiles.active", sa.select(sa.func.count()).select_from(P).where(P.c.active.is_(True))),
        (
            "profiles.with_photo",
            sa.select(sa.func.count()).select_from(P).where(P.c.primary_photo_id.is_not(None)),
        ),
        ("likes.total", sa.select(sa.func.count()).select_from(data.like)),
        ("matches.total", sa.select(sa.func.count()).select_from(data.match)),
        ("notifications.total", sa.select(sa.func.count()).select_from(data.notification)),
        ("match_scores.mean", sa.select(sa.func.avg(data.match_score.c.score))),
        ("suggestions.total", sa.select(sa.func.count()).select_from(data.suggestion)),
        ("feed.items", sa.select(sa.func.count()).select_from(data.feed_item)),
        ("search.docs", sa.select(sa.func.count()).select_from(data.search_doc)),
        ("quiz.profiles_with_traits", sa.select(sa.func.count()).select_from(data.trait)),
        ("photos.thumbnails", sa.select(sa.func.count()).select_from(data.thumbnail)),
    ]
    with _database(ctx) as engine:
        stats: dict[str, float] = {}
        with engine.connect() as conn:
            for key, query in _each(ctx, figures):
                stats["daily." + key] = round(float(conn.execute(query).scalar() or 0), 4)
            for status, n in conn.execute(
                sa.select(Ph.c.status, sa.func.count()).group_by(Ph.c.status)
            ):
                stats[f"daily.photos.{status}"] = n
        _check(ctx)
        data.write(engine, lambda conn: data.replace_stats(conn, "daily.", stats))
        ctx.log.info(
            f"rolled up {len(stats)} figures: "
            f"{stats['daily.profiles.active']:.0f} active profiles, "
            f"{stats['daily.matches.total']:.0f} matches, "
            f"{stats['daily.feed.items']:.0f} feed items"
        )


# ======================================================================================
# schedules (new schedules start disabled; an admin enables them in the UI)
# ======================================================================================
app.schedule(
    "daily-full-sync",
    name="Daily Full Sync",
    cron="0 2 * * *",
    timezone="UTC",
    mode="ALL_JOBS",
    description="All jobs in dependency order at 2am UTC, when traffic is lowest",
)
app.schedule(
    "hourly-matching",
    name="Hourly Matching",
    cron="0 * * * *",
    timezone="UTC",
    mode="GROUP",
    group="matching",
    description="Recompute match scores, matches and suggestion queues every hour",
)
app.schedule(
    "feed-refresh",
    name="Feed Refresh",
    cron="*/15 * * * *",
    timezone="UTC",
    mode="GROUP",
    group="feed",
    description="Expire old items and refresh user feeds every 15 minutes",
)
app.schedule(
    "dev-quick-test",
    name="Dev Quick Test",
    cron="*/5 * * * *",
    timezone="UTC",
    mode="ALL_JOBS",
    environments=["development"],
    description="All jobs every 5 minutes, in development only, to see the system work",
)
