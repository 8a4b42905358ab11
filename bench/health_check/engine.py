"""The health_check engine alone, in its own process, for the health_check benchmark.

``python engine.py --url-base URL --count N --concurrency C`` builds N http probes (the same specs the
benchmark's playbook gives the module), runs ``normalize`` and ``check`` from the collection's
``module_utils/probes.py`` once, serializes the result to JSON as ``exit_json`` would, and prints one
JSON line: timings, counts and this process's peak RSS (``ru_maxrss``) after the imports and at the
end. No Ansible is involved: this is the floor the module's probing can reach, and what its peak
memory is made of.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from ansible_collections.mttr.recovery.plugins.module_utils.probes import check, failing, normalize


def probe_specs(url_base, count):
    """The probe list used by the benchmark, in the module's input format."""
    return [{"name": f"probe-{i:04d}", "kind": "http", "url": f"{url_base}/health?i={i}"} for i in range(count)]


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url-base", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)

    rss_imports = maxrss_kb()
    started = time.perf_counter()
    specs = normalize(probe_specs(args.url_base, args.count))
    normalized = time.perf_counter()
    result = check(specs, concurrency=args.concurrency)
    probed = time.perf_counter()
    result["failing"] = failing(result["probes"])
    encoded = json.dumps(result)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "count": args.count,
                "concurrency": args.concurrency,
                "normalize_s": round(normalized - started, 4),
                "probe_s": round(probed - normalized, 4),
                "encode_s": round(done - probed, 4),
                "result_json_bytes": len(encoded),
                "counts": result["counts"],
                "latency_p50_ms": result["latency_p50_ms"],
                "latency_p95_ms": result["latency_p95_ms"],
                "maxrss_after_imports_kb": rss_imports,
                "maxrss_kb": maxrss_kb(),
            }
        )
    )


if __name__ == "__main__":
    main()
