"""The ClickHouse store: migrations, batched inserts, queries, and the store stage.

Every path goes through clickhouse-connect. `chdb:` DSNs select the embedded chDB
backend (same client, same SQL); `http(s)://user:pass@host:port/db` a server.

chDB opens a store directory in one process at a time. A store opened `shared` (SYNTHWEB_DB_SHARED,
for several local Faust workers on one embedded store) holds it only during a `turn()`: an exclusive
file lock beside the directory, then the chDB session, both released when the turn ends (~40 ms).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from detectors.calibration import BINS
from synthweb.estimate import DEFAULT_METHOD, Calibration
from synthweb.pipeline import Page, Stage
from synthweb.quantify import mean_score

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "clickhouse"

PAGE_COLUMNS = [
    "snapshot", "url", "host", "domain", "tld", "lang", "published", "date_source", "fetched_at",
    "status", "title", "text", "content_hash", "word_count", "detector", "detector_version",
    "p_synthetic", "excluded", "source", "source_offset", "inclusion",
]  # fmt: skip
SKIP_COLUMNS = [
    "snapshot", "url", "host", "domain", "reason", "detail", "status", "fetched_at", "source", "source_offset",
]  # fmt: skip

CALIBRATION_COLUMNS = [
    "detector", "detector_version", "threshold", "threshold_bin", "tpr", "fpr", "mean_human", "mean_machine",
    "hist_human", "hist_machine", "effective_human", "effective_machine", "method", "recorded",
]  # fmt: skip


def store_calibration(detector) -> Calibration:
    """The detector's calibration, checked to fit this store's histograms (a ValueError says why not)."""
    calibration = Calibration.from_dict(detector.require_calibration())
    if calibration.bins != BINS:
        raise ValueError(f"detector {detector.name} calibrates on {calibration.bins} bins; the store keeps {BINS}")
    return calibration


class StoreError(RuntimeError):
    """The store cannot be opened, migrated or written."""


def normalize_dsn(dsn: str) -> str:
    """Return a DSN clickhouse-connect understands; relative chDB paths become absolute.

    Accepted: `chdb:///abs/path`, `chdb://./rel/path`, `chdb:rel/path`, `chdb://memory`,
    `http(s)://user:pass@host:port/db`.
    """
    scheme = dsn.split(":", 1)[0].lower()
    if scheme == "chdb":
        rest = dsn[len("chdb:") :]
        rest = rest[2:] if rest.startswith("//") else rest
        if rest.startswith(("/./", "/../")):  # chdb:///./data is relative to the working directory
            rest = rest[1:]
        if rest in ("memory", "") or rest.startswith("memory/"):
            return "chdb://memory"
        path = Path(rest).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        return "chdb:///" + str(path.resolve()).lstrip("/")
    if scheme in ("http", "https"):
        return dsn
    raise StoreError(f"unsupported store DSN {dsn!r}: use chdb:///path or http(s)://user:pass@host:port/db")


def chdb_path(dsn: str) -> Path | None:
    """The on-disk directory of a normalised chDB DSN, or None."""
    if dsn.startswith("chdb:///"):
        return Path(dsn[len("chdb://") :])
    return None


def split_sql(script: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside strings in our DDL)."""
    script = re.sub(r"--[^\n]*", "", script)
    return [s.strip() for s in script.split(";") if s.strip()]


class Store:
    """A ClickHouse database reached through clickhouse-connect.

    `shared`: an embedded store that other processes open too; each method takes a `turn()` unless
    the caller holds one for several calls (the worker holds one per batch). Servers ignore it.
    """

    def __init__(self, dsn: str, shared: bool = False):
        self.dsn = normalize_dsn(dsn)
        path = chdb_path(self.dsn)
        if path is not None:
            try:
                path.mkdir(parents=True, exist_ok=True)
                # a name of its own: processes sharing one store probe it at once
                with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
                    pass
            except OSError as exc:
                raise StoreError(f"cannot write store at {path}: {exc.strerror or exc}") from exc
        self._lock_path = path.with_name(path.name + ".lock") if shared and path is not None else None
        self._lock = None
        self._turns = 0
        self._client = None
        if self._lock_path is None:
            self._client = self._connect()
        else:
            with self.turn():  # fails here, not at the first batch, when the store cannot be opened
                pass

    @property
    def client(self):
        if self._client is None:
            raise StoreError(f"shared store {redact(self.dsn)} used outside a turn()")
        return self._client

    def _connect(self):
        import clickhouse_connect

        try:
            return clickhouse_connect.get_client(dsn=self.dsn)
        except Exception as exc:  # connection refused, bad credentials, chdb lock ...
            raise StoreError(f"cannot open store {redact(self.dsn)}: {exc}") from exc

    @contextlib.contextmanager
    def turn(self) -> Iterator[Store]:
        """Hold a shared store (lock and session) until the block ends; re-entrant; a no-op otherwise."""
        if self._lock_path is None or self._turns:
            self._turns += 1
            try:
                yield self
            finally:
                self._turns -= 1
            return
        lock = open(self._lock_path, "a")  # noqa: SIM115 - held until the turn ends
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
            self._client = self._connect()
            self._turns = 1
            try:
                yield self
            finally:
                self._turns = 0
                client, self._client = self._client, None
                client.close()
        finally:
            lock.close()

    def migrate(self) -> list[str]:
        """Apply the numbered schemas/clickhouse/*.sql files not yet applied; idempotent."""
        with self.turn():
            return self._migrate()

    def _migrate(self) -> list[str]:
        self.client.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
            "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
        )
        done = {row[0] for row in self.client.query("SELECT version FROM schema_migrations").result_rows}
        scripts = {path.name: split_sql(path.read_text()) for path in sorted(SCHEMA_DIR.glob("[0-9][0-9][0-9]_*.sql"))}
        applied = []
        for name, statements in scripts.items():
            version = int(name[:3])
            if version in done:
                continue
            for statement in statements:
                self.client.command(statement)
            self.client.insert("schema_migrations", [[version, name]], column_names=["version", "name"])
            applied.append(name)
        return applied + self._recreate_missing(scripts)

    def _recreate_missing(self, scripts: dict[str, list[str]]) -> list[str]:
        """Recreate tables and views that applied migrations (`scripts`: file name -> statements) made and
        someone dropped since.

        Every CREATE and ALTER of our migrations is idempotent, so the files are replayed in order without
        their backfill INSERTs, except into tables that were missing; a missing aggregate behind a
        materialized view is refilled from `pages` with the view's own SELECT. A dropped `pages` comes back
        empty: its rows are gone, and the aggregates still count them (logged).
        """
        create = re.compile(r"CREATE (?:TABLE|MATERIALIZED VIEW|VIEW) IF NOT EXISTS (\w+)")
        created = {m.group(1) for statements in scripts.values() for st in statements if (m := create.match(st))}
        missing = created - {r[0] for r in self.client.query("SHOW TABLES").result_rows}
        if not missing:
            return []
        log.warning("store %s lacks %s (dropped by hand?): recreating", redact(self.dsn), ", ".join(sorted(missing)))
        if "pages" in missing:
            log.error("the pages table was dropped: its rows are gone, and the share aggregates still count them")
        for statements in scripts.values():
            inserted = {m.group(1) for st in statements if (m := re.match(r"INSERT INTO (\w+)", st))}
            for statement in statements:
                target = re.match(r"INSERT INTO (\w+)", statement)
                if target and target.group(1) not in missing:
                    continue  # a backfill of a table that kept its rows
                self.client.command(statement)
                view = re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS \w+ TO (\w+) AS\s+(SELECT.*)", statement, re.S)
                if view and view.group(1) in missing and view.group(1) not in inserted and "pages" not in missing:
                    self.client.command(f"INSERT INTO {view.group(1)} {view.group(2)}")
        return [f"recreated {name}" for name in sorted(missing)]

    def insert_pages(self, pages: list[Page], dedup_token: str | None = None) -> None:
        """Insert stored pages in one batch; `dedup_token` makes a retried insert idempotent."""
        rows = [[_page_value(p, c) for c in PAGE_COLUMNS] for p in pages]
        # Two-phase scoring: the strong detector's score of a picked page is a row of its own.
        rows += [[_page_value(p, c, p.strong) for c in PAGE_COLUMNS] for p in pages if p.strong is not None]
        if rows:
            self._insert("pages", rows, PAGE_COLUMNS, dedup_token)

    def insert_skips(self, pages: list[Page], dedup_token: str | None = None) -> None:
        """Record pages that were not stored, with their reason."""
        if pages:
            rows = [
                [p.snapshot, p.url, p.host or host_of(p.url), p.domain, p.skip, p.skip_detail[:2000],
                 p.status, _utc(p.fetched_at), p.source, p.source_offset]
                for p in pages
            ]  # fmt: skip
            self._insert("skipped_pages", rows, SKIP_COLUMNS, dedup_token)

    def record_calibration(self, detector) -> bool:
        """Write the detector's calibration to `detector_calibrations`, so SQL can correct its shares.

        False (nothing written) for a detector without a calibration that fits the store.
        """
        try:
            calibration = store_calibration(detector)
        except ValueError as exc:
            log.warning("no calibration recorded for %s v%s: %s", detector.name, detector.version, exc)
            return False
        tp, n_machine, fp, n_human = calibration.rates()
        human, machine = calibration.hist_human, calibration.hist_machine
        row = [
            detector.name, detector.version, calibration.threshold, calibration.threshold_bin,
            tp / n_machine, fp / n_human, float(mean_score(human / human.sum())[0]),
            float(mean_score(machine / machine.sum())[0]),
            human.tolist(), machine.tolist(), calibration.n_human, calibration.n_machine,
            calibration.method or DEFAULT_METHOD, datetime.now(UTC),
        ]  # fmt: skip
        with self.turn():
            self._insert("detector_calibrations", [row], CALIBRATION_COLUMNS, None)
        return True

    def insert(self, table: str, rows: list[list[Any]], columns: list[str], dedup_token: str | None = None) -> None:
        """Insert rows into one of the store's tables (StoreError on failure)."""
        self._insert(table, rows, columns, dedup_token)

    def _insert(self, table: str, rows: list[list[Any]], columns: list[str], token: str | None) -> None:
        # The MV setting makes a deduplicated retry skip the aggregates too, not only `pages`.
        settings = (
            {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}
            if token
            else None
        )
        try:
            with self.turn():
                self.client.insert(table, rows, column_names=columns, settings=settings)
        except Exception as exc:
            raise StoreError(f"insert into {table} failed: {exc}") from exc

    def stored_offset(self, source: str, tables: tuple[str, ...] = ("pages", "skipped_pages")) -> int:
        """The highest Kafka offset stored from `source` ("topic/partition") in `tables`, or -1."""
        unknown = set(tables) - {"pages", "skipped_pages"}
        if unknown:
            raise ValueError(f"stored_offset: unknown tables {sorted(unknown)}")
        parts = "".join(f" UNION ALL SELECT source_offset FROM {t} WHERE source = {{s:String}}" for t in tables)
        _, rows = self.query(f"SELECT max(o) FROM (SELECT toInt64(-1) AS o{parts})", {"s": source})
        value = rows[0][0] if rows else None
        return -1 if value is None else int(value)

    def stored_urls(self, keys: set[tuple[str, str]], domains: set[str] | None = None) -> set[tuple[str, str]]:
        """Which of these (snapshot, url) pairs are already in `pages` or `skipped_pages`.

        `domains` (the registered domains of the urls) lets the lookup in `pages` use its primary
        key (domain, snapshot, url) instead of scanning the table.
        """
        if not keys:
            return set()
        params = {"s": sorted({s for s, _ in keys}), "u": sorted({u for _, u in keys}), "d": sorted(domains or [])}
        in_domains = "domain IN {d:Array(String)} AND " if domains else ""
        _, rows = self.query(
            f"SELECT snapshot, url FROM pages WHERE {in_domains}snapshot IN {{s:Array(String)}} "
            "AND url IN {u:Array(String)} UNION ALL "
            "SELECT snapshot, url FROM skipped_pages WHERE snapshot IN {s:Array(String)} AND url IN {u:Array(String)}",
            params,
        )
        return {(str(s), str(u)) for s, u in rows} & keys

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = False
    ) -> tuple[list[str], list[tuple]]:
        """Run a query; return (column names, rows). `readonly`: the server refuses any write in it (ClickHouse
        readonly=2: every statement of a multi-statement query, settings may still be tuned)."""
        with self.turn():
            result = self.client.query(sql, parameters=parameters, settings={"readonly": 2} if readonly else None)
        return list(result.column_names), [tuple(r) for r in result.result_rows]

    def close(self) -> None:
        if self._client is not None and self._lock_path is None:
            self._client.close()

    def committed_offset(self, source: str) -> tuple[int, int]:
        """(record offset, seek offset) of the last batch committed from archive `source`, or (-1, 0)."""
        _, rows = self.query(
            "SELECT record_offset, resume_at FROM ingest_progress WHERE source = {s:String} "
            "ORDER BY record_offset DESC LIMIT 1",
            {"s": source},
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (-1, 0)

    def commit_offset(self, source: str, record_offset: int, resume_at: int, records: int) -> None:
        """Record that every record of archive `source` up to `record_offset` is stored."""
        columns = ["source", "record_offset", "resume_at", "records"]
        self._insert("ingest_progress", [[source, record_offset, resume_at, records]], columns, None)


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def redact(dsn: str) -> str:
    """Hide the password of a server DSN in messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", dsn)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _page_value(page: Page, column: str, score=None) -> Any:
    """The page's value for `column`; with `score` (a `Score`), its detector's fields come from there."""
    value = getattr(score if score is not None and hasattr(score, column) else page, column)
    if column == "fetched_at":
        return _utc(value)
    if column == "p_synthetic" and value is not None:
        return float(value)
    return value


class StoreStage(Stage):
    """Writes each batch of pages to ClickHouse: stored pages to `pages`, skips to `skipped_pages`."""

    name = "store"
    requires = ("clickhouse_connect",)

    def __init__(self, store: Store):
        self.store = store
        self.stored = 0
        self.skipped = 0

    @classmethod
    def from_settings(cls, settings) -> StoreStage:
        store = Store(settings.get("SYNTHWEB_DB"), shared=settings.getbool("SYNTHWEB_DB_SHARED"))
        store.migrate()
        # The detectors the score stage loads (cached): SQL needs their calibrations beside their pages.
        names = [settings.get("SYNTHWEB_DETECTOR")]
        if names[0]:
            names.append(settings.get("SYNTHWEB_FAST_DETECTOR"))
        from detectors.runtime import DetectorError, load_detector

        for name in dict.fromkeys(n for n in names if n):
            try:
                store.record_calibration(load_detector(name))
            except DetectorError as exc:  # the score stage says so, if it runs at all
                log.warning("no calibration recorded for detector %s: %s", name, exc)
        return cls(store)

    def run(self, pages: Iterable[Page], dedup_token: str | None = None) -> Iterator[Page]:
        batch = list(pages)
        kept = [p for p in batch if not p.skip]
        skipped = [p for p in batch if p.skip]
        # Skips first, pages last: a worker reads its high-water mark from `pages` only
        # (stored_offset(..., tables=("pages",))), so a crash between the two inserts never
        # leaves a mark above skips that were not written.
        with self.store.turn():
            self.store.insert_skips(skipped, dedup_token and f"{dedup_token}:skips")
            self.store.insert_pages(kept, dedup_token and f"{dedup_token}:pages")
        self.stored += len(kept)
        self.skipped += len(skipped)
        yield from batch

    def close(self) -> None:
        self.store.close()


def stage_store(pipeline) -> Store | None:
    """The store the pipeline's StoreStage writes to, if it has one. Sources read offsets and stored URLs
    through the same connection (one embedded chDB per process)."""
    return next((s.store for s in pipeline.stages if isinstance(s, StoreStage)), None)


def store_of(pipeline, settings) -> Store:
    """`stage_store(pipeline)`, else the SYNTHWEB_DB store."""
    store = stage_store(pipeline)
    return store if store is not None else Store(settings.get("SYNTHWEB_DB"))
