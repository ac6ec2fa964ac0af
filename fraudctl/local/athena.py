"""The local target's Athena: the catalog's table definition, partition projection, and DuckDB.

A query is parsed and checked as Trino SQL, its partitions are computed the way projection
would (`fraudctl.query.projection`), only the objects under those partitions are listed and
read, and the translated SQL runs in an in-memory DuckDB whose session time zone is UTC. The
table is a view over exactly those objects, with ``dt`` a string and ``hr`` an integer (the
partition keys' Athena types) and timestamps without a zone, as Athena shows them. An absent
partition yields no rows, not an error.
"""

from __future__ import annotations

import time
from typing import Any

import duckdb
from sqlglot import exp

from fraudctl import errors
from fraudctl.local.catalog import LocalCatalog
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.ports import QueryResult
from fraudctl.query import dialect, projection

# Athena column types as DuckDB's (and sqlglot's) names.
_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "double": "DOUBLE", "int": "INTEGER",
          "bigint": "BIGINT", "boolean": "BOOLEAN"}
# With more days than this the lake is listed once and filtered, not a prefix per day.
_LIST_PER_DAY_MAX = 40


class LocalAthenaEngine:
    def __init__(self, catalog: LocalCatalog, store: DirectoryStore, database: str,
                 table: str) -> None:
        self.catalog, self.store = catalog, store
        self.database, self.table = database, table

    def describe(self, result: QueryResult) -> str:
        return (f"{len(result.rows)} row(s) in {result.seconds:.2f} s · "
                f"{result.partitions} partition(s), {result.objects_read} object(s), "
                f"{result.bytes_read / 2**20:.2f} MiB read")

    def _definition(self) -> dict[str, Any]:
        definition = self.catalog.table(self.database, self.table)
        if definition is None:
            raise errors.StackNotFound(f"table {self.database}.{self.table} is not in the "
                                       "catalog", "run `fraudctl up`")
        return definition

    @staticmethod
    def _columns(definition: dict[str, Any]) -> list[tuple[str, str]]:
        columns = [*definition["StorageDescriptor"]["Columns"], *definition["PartitionKeys"]]
        return [(c["Name"], _TYPES[c["Type"]]) for c in columns]

    def _key(self, uri: str) -> str:
        """A lake URI of the table definition as a key of the store."""
        location = self.store.location
        if not uri.startswith(location):
            raise errors.ConfigError(f"the table's location {uri} is not in the stack's "
                                     f"object store {location}", "run `fraudctl up` again")
        return uri[len(location):]

    def _objects(self, proj: projection.Projection, partitions: list[tuple[str, int]]
                 ) -> list[tuple[str, int]]:
        """(path, size) of every object under the partitions, and nothing else."""
        if not partitions:
            return []
        prefixes = {self._key(proj.prefix(day, hour)) for day, hour in partitions}
        days = sorted({day for day, _ in partitions})
        if len(days) <= _LIST_PER_DAY_MAX:
            # One listing per day: the folder dt=<day>/ holds that day's hours.
            listings = [self.store.list(self._key(proj.prefix(day, 0)).rsplit("hr=", 1)[0])
                        for day in days]
        else:
            location = self._definition()["StorageDescriptor"]["Location"]
            listings = [self.store.list(self._key(location))]
        found = []
        for listing in listings:
            for info in listing:
                if info.key.rsplit("/", 1)[0] + "/" in prefixes:
                    found.append((str(self.store.root / info.key), info.size))
        return found

    def _view(self, con: duckdb.DuckDBPyConnection, definition: dict[str, Any],
              files: list[str]) -> None:
        columns = self._columns(definition)
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.database}"')
        name = f'"{self.database}"."{self.table}"'
        data = [c for c in columns if c[0] not in ("dt", "hr")]
        if not files:
            nulls = ", ".join(f'CAST(NULL AS {t}) AS "{n}"' for n, t in columns)
            con.execute(f"CREATE VIEW {name} AS SELECT {nulls} LIMIT 0")
            return
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        hive = "hive_partitioning = true, hive_types = {'dt': VARCHAR, 'hr': INTEGER}"
        present = {n for n, _ in data}
        if definition["Parameters"].get("classification") == "parquet":
            source = f"read_parquet({listed}, {hive}, union_by_name = true)"
            # As in Athena, a column the table has and no file has reads as NULL (objects
            # written before the column was added). Quoted object paths, not user input.
            described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608
            present = {str(row[0]) for row in described}
        else:
            spec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n, _ in data) + "}"
            source = (f"read_json({listed}, format = 'newline_delimited', "
                      f"compression = 'gzip', columns = {spec}, {hive})")
        select = ", ".join((f'CAST("{n}" AS {t})' if n in present else f"CAST(NULL AS {t})")
                           + f' AS "{n}"' for n, t in data)
        # Built from the catalog's own column names and quoted object paths, not user input.
        view = (f"CREATE VIEW {name} AS SELECT {select}, CAST(dt AS VARCHAR) AS dt, "  # noqa: S608
                f"CAST(hr AS INTEGER) AS hr FROM {source}")
        con.execute(view)

    def _lock(self, con: duckdb.DuckDBPyConnection, definition: dict[str, Any]) -> None:
        """From here on the connection reads the lake's folder and nothing else: no other
        file, no URL, no extension, no attached database, and no setting can change that."""
        lake = self.store.root / self._key(definition["StorageDescriptor"]["Location"])
        folder = str(lake.resolve()).rstrip("/") + "/"
        con.execute("SET allowed_directories = [?]", [folder])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def run(self, sql: str) -> QueryResult:
        started = time.perf_counter()
        definition = self._definition()
        schema: dialect.Schema = {self.database: {self.table: {
            n: t for n, t in self._columns(definition)}}}
        tree = dialect.prepare(sql, schema, self.database)
        con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})
        try:
            con.execute("SET TimeZone = 'UTC'")
            # Locked before any part of the user's SQL is evaluated (partition pruning
            # evaluates its predicates on this connection).
            self._lock(con, definition)

            def evaluate(node: exp.Expr) -> Any:
                try:
                    row = con.execute(f"SELECT {node.sql(dialect='duckdb')}").fetchone()
                except duckdb.Error as exc:   # e.g. `hr = 1/0`: the query's error, not ours
                    raise dialect.QueryError(_duckdb_message(exc)) from None
                return row[0] if row else None

            proj = projection.Projection.of(definition)
            partitions = projection.prune(tree, self.table, proj, evaluate)
            objects = self._objects(proj, partitions)
            self._view(con, definition, [path for path, _ in objects])
            try:
                cursor = con.execute(dialect.to_duckdb(tree))
                rows = cursor.fetchall()
            except duckdb.Error as exc:
                raise dialect.QueryError(_duckdb_message(exc)) from None
            columns = [d[0] for d in cursor.description or []]
        finally:
            con.close()
        return QueryResult(columns=columns, rows=rows, partitions=len(partitions),
                           objects_read=len(objects), bytes_read=sum(s for _, s in objects),
                           seconds=time.perf_counter() - started)


def _duckdb_message(exc: Exception) -> str:
    text = str(exc).splitlines()[0]
    if "Scalar Function with name" in text or "Aggregate Function with name" in text:
        name = text.split("with name", 1)[1].split()[0]
        return f"unsupported function {name}"
    return text.replace("Catalog Error: ", "").replace("Binder Error: ", "")
