#!/usr/bin/env python3
"""Asks the local stack's Prometheus what happened during a hot swap.

Used by deploy/local-stack.sh: prints the PromQL queries and their results
that show the model version changing under load, and with --check exits 1
unless Prometheus saw the old and the new version both serve traffic, the
new one serving at the end, no failed request and no failed load, and the
load generator itself reported no error.

Standard library only (the stack runs wherever Prometheus and Python are).
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request


def query(prometheus, promql, at=None):
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {promql}: {body}")
    return body["data"]["result"]


def query_range(prometheus, promql, start, end, step):
    params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
              "step": f"{step}"}
    url = (f"{prometheus}/api/v1/query_range?"
           f"{urllib.parse.urlencode(params)}")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"range query failed: {promql}: {body}")
    return body["data"]["result"]


def by_label(result, label):
    """{label value: float value} of an instant vector."""
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def show(title, promql, values):
    print(f"\n  {title}\n    {promql}")
    if not values:
        print("    (no series)")
    for key, value in sorted(values.items()):
        print(f"    {key or '-':>12}  {value:g}")


def timeline(prometheus, model, start, end):
    """Which version answered requests, second by second."""
    promql = (f'sum by (version) (rate(flexor_inference_requests_total'
              f'{{model="{model}", code="OK"}}[3s]))')
    series = query_range(prometheus, promql, start, end, 1)
    per_second = {}
    for s in series:
        version = s["metric"].get("version", "?")
        for t, v in s["values"]:
            if float(v) > 0:
                per_second.setdefault(int(float(t)), []).append(
                    f"v{version} {float(v):.0f}/s")
    print(f"\n  Serving version, second by second\n    {promql}")
    for t in sorted(per_second):
        print(f"    +{t - int(start):4d}s  {', '.join(sorted(per_second[t]))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL")
    parser.add_argument("--model", required=True)
    parser.add_argument("--old-version", required=True)
    parser.add_argument("--new-version", required=True)
    parser.add_argument("--start", type=float, required=True,
                        help="Unix time the stack started")
    parser.add_argument("--bench-json", required=True,
                        help="flexorctl bench --json output, one per line")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless the swap was clean")
    args = parser.parse_args()

    end = time.time()
    window = f"{int(end - args.start) + 5}s"
    model = args.model
    failures = []

    def expect(ok, message):
        if not ok:
            failures.append(message)

    print(f"Prometheus at {args.prometheus}, window {window}:")
    q = "up{job=\"flexor-server\"}"
    up = by_label(query(args.prometheus, q), "instance")
    show("Scrape target up", q, up)
    expect(up and all(v == 1 for v in up.values()), "server target not up")

    q = (f'max by (version) (max_over_time(flexor_model_file_bytes'
         f'{{model="{model}"}}[{window}]))')
    seen = by_label(query(args.prometheus, q), "version")
    show("Versions loaded at some point (file bytes)", q, seen)
    expect(args.old_version in seen and args.new_version in seen,
           f"expected versions {args.old_version} and {args.new_version} "
           f"loaded during the run, saw {sorted(seen)}")

    q = f'flexor_model_file_bytes{{model="{model}"}}'
    now = by_label(query(args.prometheus, q), "version")
    show("Versions loaded now", q, now)
    expect(list(now) == [args.new_version],
           f"expected only version {args.new_version} serving now, "
           f"saw {sorted(now)}")

    q = (f'sum by (version) (increase(flexor_inference_requests_total'
         f'{{model="{model}", code="OK"}}[{window}]))')
    served = by_label(query(args.prometheus, q), "version")
    show("Requests answered OK per version", q, served)
    for v in (args.old_version, args.new_version):
        expect(served.get(v, 0) > 0, f"version {v} answered no request")

    q = (f'sum by (model, code) (increase(flexor_inference_requests_total'
         f'{{code!="OK"}}[{window}]))')
    failed = {k: v for k, v in by_label(query(args.prometheus, q),
                                        "code").items() if v > 0}
    show("Failed requests by code", q, failed)
    expect(not failed, f"failed requests: {failed}")

    # Successful loads are one server-wide series (no model label, see
    # docs/metrics.md); this stack serves one model.
    q = (f'sum by (result) (increase(flexor_model_loads_total'
         f'[{window}]))')
    loads = by_label(query(args.prometheus, q), "result")
    show("Model loads during the run", q, loads)
    expect(loads.get("success", 0) > 0, "no successful load was seen")
    expect(loads.get("failure", 0) == 0, "a load failed")

    q = 'ALERTS{alertstate="firing"}'
    firing = by_label(query(args.prometheus, q), "alertname")
    show("Firing alerts", q, firing)

    timeline(args.prometheus, model, args.start, end)

    ok_requests, errors = 0, {}
    with open(args.bench_json) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            result = json.loads(line)
            ok_requests += result["ok"]
            for code, n in result["errors"].items():
                errors[code] = errors.get(code, 0) + n
    print(f"\n  Load generator (flexorctl bench): {ok_requests} requests OK, "
          f"errors: {errors or 'none'}")
    expect(ok_requests > 0, "the load generator completed no request")
    expect(not errors, f"the load generator saw errors: {errors}")

    if failures:
        print("\nHOT SWAP CHECK FAILED:\n  " + "\n  ".join(failures))
        return 1 if args.check else 0
    print(f"\nHot swap of '{model}' v{args.old_version} -> "
          f"v{args.new_version} under load: no failed request.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
