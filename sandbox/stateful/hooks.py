"""One-off commands of the stateful sample's release image: the legs' hooks and the data check.

Run as ``python3 /app/hooks.py COMMAND`` in a one-off container of the release, on the
cluster's network, with the same ``PG*`` variables as the service:

- ``expand``: add the nullable column ``full_name`` (instant in PostgreSQL: no table rewrite);
- ``backfill [--batch N] [--pause-ms M]``: copy ``name`` into ``full_name`` where it is
  missing, N rows per transaction with a pause between batches, so live traffic keeps its
  locks short; bounded by the row count seen at the start;
- ``contract``: drop the column ``name``;
- ``check [--acked FILE] [--require-full-name]``: every acknowledged write (JSON lines
  ``{"id": …, "name": …}``, the newest line per id wins) is present with its value, and where
  both columns hold a value they agree. Prints one JSON summary; exits 1 on any problem;
- ``fail``: exits 1 (a hook that fails, for tests of a failing leg).

Every command prints ``key=value`` lines and exits 0 on success, 1 on failure, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
from app import connect, ensure_table

__all__ = ["main"]

_EXAMPLES = 5


def expand(_args: argparse.Namespace) -> int:
    with connect() as conn, conn.cursor() as cur:
        ensure_table(cur)
        cur.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS full_name text")
    print("event=expanded column=full_name")
    return 0


def backfill(args: argparse.Namespace) -> int:
    with connect() as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM users WHERE full_name IS NULL AND name IS NOT NULL")
            (missing,) = cur.fetchone() or (0,)
        conn.commit()
        batches = math.ceil(missing / args.batch) + 2  # rows written meanwhile are double-written
        copied = 0
        for batch in range(1, batches + 1):
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE users SET full_name = name WHERE id IN ("
                    " SELECT id FROM users WHERE full_name IS NULL AND name IS NOT NULL"
                    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (args.batch,),
                )
                done = cur.rowcount
            conn.commit()
            copied += done
            print(f"event=batch number={batch} rows={done}", flush=True)
            if done == 0:
                break
            time.sleep(args.pause_ms / 1000)
    print(f"event=backfilled rows={copied} missing_at_start={missing}")
    return 0


def contract(_args: argparse.Namespace) -> int:
    with connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE users DROP COLUMN IF EXISTS name")
    print("event=contracted dropped=name")
    return 0


def check(args: argparse.Namespace) -> int:
    acked = _read_acked(args.acked) if args.acked else {}
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
        present = {row[0] for row in cur.fetchall()}
        columns = [column for column in ("name", "full_name") if column in present]
        cur.execute(f"SELECT id, {', '.join(columns)} FROM users")
        rows = {row[0]: dict(zip(columns, row[1:], strict=True)) for row in cur.fetchall()}
    problems: dict[str, list[dict[str, Any]]] = {"missing": [], "inconsistent": []}
    for user_id, name in acked.items():
        row = rows.get(user_id)
        if row is None:
            problems["missing"].append({"id": user_id, "acked": name})
        elif _value(row) != name:
            problems["inconsistent"].append({"id": user_id, "acked": name, "stored": row})
    disagree = [
        {"id": user_id, "stored": row}
        for user_id, row in rows.items()
        if row.get("name") is not None
        and row.get("full_name") is not None
        and row["name"] != row["full_name"]
    ]
    unfilled = (
        [user_id for user_id, row in rows.items() if row.get("full_name") is None]
        if args.require_full_name
        else []
    )
    summary = {
        "rows": len(rows),
        "columns": columns,
        "acked": len(acked),
        "missing": len(problems["missing"]),
        "inconsistent": len(problems["inconsistent"]),
        "columns_disagree": len(disagree),
        "full_name_missing": len(unfilled),
        "examples": {
            "missing": problems["missing"][:_EXAMPLES],
            "inconsistent": problems["inconsistent"][:_EXAMPLES],
            "columns_disagree": disagree[:_EXAMPLES],
            "full_name_missing": unfilled[:_EXAMPLES],
        },
    }
    print(json.dumps(summary, ensure_ascii=False, default=str))
    bad = summary["missing"] or summary["inconsistent"] or disagree or unfilled
    return 1 if bad else 0


def _value(row: dict[str, Any]) -> Any:
    """The row's name as a reader of either column finds it: full_name once it is filled."""
    return row["full_name"] if row.get("full_name") is not None else row.get("name")


def _read_acked(path: Path) -> dict[str, str]:
    acked: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line from a writer that was stopped mid-line
        if isinstance(entry, dict) and "id" in entry and "name" in entry:
            acked[str(entry["id"])] = str(entry["name"])
    return acked


def fail(_args: argparse.Namespace) -> int:
    print("event=failed on purpose", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hooks.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("expand").set_defaults(run=expand)
    filling = commands.add_parser("backfill")
    filling.add_argument("--batch", type=int, default=500, choices=range(1, 100_001), metavar="N")
    filling.add_argument("--pause-ms", type=int, default=20, choices=range(0, 10_001), metavar="M")
    filling.set_defaults(run=backfill)
    commands.add_parser("contract").set_defaults(run=contract)
    checking = commands.add_parser("check")
    checking.add_argument("--acked", type=Path)
    checking.add_argument("--require-full-name", action="store_true")
    checking.set_defaults(run=check)
    commands.add_parser("fail").set_defaults(run=fail)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except psycopg2.Error as exc:
        print(f"event=database_error error={str(exc).strip()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
