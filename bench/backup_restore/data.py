"""The backup_restore benchmark's data: a database and a file tree of a given size, generated
deterministically, and what proves a restore of either complete (a fingerprint, a count)."""

from __future__ import annotations

import os
import random
import time

MIB = 1024 * 1024
DATABASE = "shop"


def generate_database(server, size_mb):
    """Three related tables sized so that ``pg_dump -Fc -Z1`` comes to about ``size_mb`` MiB.

    ``orders`` (rows of ids, times, a status, an amount and a 65-character hex note: compresses about 2x) is
    about half of the dump; ``documents`` (2 KB bytea bodies of chained sha256 digests: incompressible, stored
    in TOAST) the other half; ``customers`` is small. Primary keys, a foreign key and a secondary index, so
    the restore builds indexes and checks constraints as a real one does. Deterministic (no random()).
    """
    customers = max(1000, size_mb * 40)
    orders = size_mb * 6200
    documents = size_mb * 300
    server.create_database(DATABASE)
    started = time.perf_counter()
    with server.connect(DATABASE) as conn:
        conn.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,"
            " created_at timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO customers SELECT i, 'customer ' || md5('n' || i),"
            " 'c' || i || '@' || substr(md5('d' || i), 1, 10) || '.example',"
            " timestamptz '2024-01-01' + i * interval '17 seconds' FROM generate_series(1, %s) i",
            (customers,),
        )
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,"
            " created_at timestamptz NOT NULL, status text NOT NULL, amount numeric(12,2) NOT NULL, note text)"
        )
        conn.execute(
            "INSERT INTO orders SELECT i, 1 + (i::bigint * 7919) %% %s,"
            " timestamptz '2024-01-01' + i * interval '3 seconds',"
            " (ARRAY['new','paid','shipped','delivered','refunded'])[1 + i %% 5],"
            " ((i::bigint * 104729) %% 100000) / 100.0, md5('o' || i) || ' ' || md5('p' || i)"
            " FROM generate_series(1, %s) i",
            (customers, orders),
        )
        conn.execute("CREATE INDEX orders_customer ON orders (customer_id, created_at)")
        conn.execute(
            "CREATE TABLE documents (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders,"
            " kind text NOT NULL, body bytea NOT NULL)"
        )
        conn.execute(
            "INSERT INTO documents SELECT i, 1 + (i::bigint * 31) %% %s, 'invoice',"
            " (SELECT string_agg(sha256(int8send(i) || int4send(j)), '' ORDER BY j) FROM generate_series(1, 64) j)"
            " FROM generate_series(1, %s) i",
            (orders, documents),
        )
        conn.execute("VACUUM ANALYZE")
    return {
        "rows": {"customers": customers, "orders": orders, "documents": documents},
        "generate_s": round(time.perf_counter() - started, 2),
        "database_bytes": server.query(DATABASE, "SELECT pg_database_size(current_database())")[0][0],
        "fingerprint": database_fingerprint(server, DATABASE),
    }


def database_fingerprint(server, database):
    """Row counts and content sums: equal after a correct restore."""
    row = server.query(
        database,
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT sum(amount) FROM orders),"
        " (SELECT sum(length(note)) FROM orders), (SELECT count(*) FROM documents),"
        " (SELECT sum(get_byte(body, 100) + get_byte(body, 2000)) FROM documents),"
        " (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')",
    )[0]
    return [str(value) for value in row]


TEXT_WORDS = [
    "GET",
    "POST",
    "PUT",
    "200",
    "201",
    "204",
    "301",
    "304",
    "400",
    "401",
    "403",
    "404",
    "409",
    "500",
    "502",
    "503",
    "/api/v1/orders",
    "/api/v1/customers",
    "/health",
    "/static/app.js",
    "/static/site.css",
    "checkout",
    "cart",
    "payment",
    "shipped",
    "refunded",
    "user=alice",
    "user=bob",
    "user=carol",
    "latency_ms=",
    "bytes=",
    "INFO",
    "WARN",
    "ERROR",
    "DEBUG",
    "request_id=",
    "trace=",
    "span=",
    '{"id":',
    '"status":',
    '"amount":',
]


def text_pool(rng, size):
    """Log- and JSON-like text (gzip -1 makes it about 3-4x smaller)."""
    lines = []
    total = 0
    while total < size:
        line = (
            f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z "
            + " ".join(
                rng.choice(TEXT_WORDS) + (str(rng.randint(0, 99999)) if rng.random() < 0.4 else "")
                for _word in range(rng.randint(6, 18))
            )
            + f" id={rng.getrandbits(64):016x}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def generate_tree(root, size_mb, seed=20261123):
    """A tree of about ``size_mb`` MiB: many small text files, medium binaries, a few big files of each kind.

    By bytes about 20% small text files (1-16 KiB: configs, JSON, logs), 30% medium incompressible files
    (64 KiB-1 MiB: images, archives), 50% big files (4-32 MiB, alternately log text and incompressible data);
    about 100 files per directory, two levels deep. Deterministic (seeded).
    """
    rng = random.Random(seed)
    started = time.perf_counter()
    pool = text_pool(rng, 8 * MIB)
    budget = size_mb * MIB
    files = 0
    total = 0

    def text(size):
        offset = rng.randrange(0, len(pool) - size)
        return pool[offset : offset + size]

    def write(relative, data):
        nonlocal files, total
        path = root / relative
        if files % 100 == 0 or not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files += 1
        total += len(data)

    tiers = [  # (name, cumulative share of the bytes, content, suffix)
        ("static", 0.20, lambda: text(rng.randint(1024, 16 * 1024)), ".json"),
        ("media", 0.50, lambda: rng.randbytes(rng.randint(64 * 1024, MIB)), ".bin"),
    ]
    for name, share, make, suffix in tiers:
        index = 0
        while total < budget * share:
            write(f"{name}/{index // 10000:02d}/{index // 100 % 100:02d}/{name}-{index:06d}{suffix}", make())
            index += 1
    index = 0
    while total < budget:
        size = min(rng.randint(4 * MIB, 32 * MIB), max(budget - total, 1024))
        if index % 2:
            data = rng.randbytes(size)
        else:
            data = b"".join(text(MIB) for _block in range(size // MIB)) + text(size % MIB + 1)[: size % MIB]
        write(f"large/{index:03d}-{'blob.bin' if index % 2 else 'app.log'}", data)
        index += 1
    os.symlink("large/000-app.log", root / "current.log")
    (root / "private").mkdir()
    (root / "private" / "key.pem").write_bytes(b"not a key\n")
    (root / "private" / "key.pem").chmod(0o600)
    (root / "private").chmod(0o700)
    return {"files": files + 1, "tree_bytes": total + 10, "generate_s": round(time.perf_counter() - started, 2)}


def tree_stats(root):
    files = 0
    size = 0
    for parent, _dirs, names in os.walk(root):
        for name in names:
            info = os.lstat(os.path.join(parent, name))
            files += 1
            size += info.st_size if not os.path.islink(os.path.join(parent, name)) else 0
    return files, size
