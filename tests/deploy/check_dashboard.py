#!/usr/bin/env python3
"""Checks the Grafana dashboard (and the alert rules) against the server.

Static checks (always):
  * the dashboard is valid JSON with a uid, unique panel ids, panels that do
    not overlap on the grid, and every query on the ${datasource} variable;
  * every metric a dashboard query or an alert/recording rule reads is one
    the server exports, as listed in docs/metrics.md (a renamed metric
    would otherwise leave an empty panel or an alert that never fires).
Live check (--prometheus URL): every dashboard query, with its Grafana
variables filled in, is evaluated by that Prometheus and must not error,
and the panels in --require-data must return series.

Usage: check_dashboard.py [--metrics-doc docs/metrics.md]
                          [--rules deploy/monitoring/alerts.yml]
                          [--prometheus URL] DASHBOARD.json
"""

import argparse
import json
import pathlib
import re
import sys
import urllib.parse
import urllib.request

# Metric names in PromQL: not preceded by a word character or ':' (so the
# tail of a recording rule name such as model:flexor_x:rate1m is skipped).
METRIC_RE = re.compile(r"(?<![\w:])((?:flexor|process)_[a-z0-9_]+|up)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana variables as they are replaced for a live query.
VARIABLES = {"$__rate_interval": "1m", "$job": ".*", "$instance": ".*",
             "$model": ".*"}
# Panels that must show data on a server with traffic (live check).
DEFAULT_REQUIRE_DATA = ["Requests / s", "Throughput by model",
                        "Request latency by model", "Resident memory",
                        "Model file bytes by model", "Loaded models"]


def documented_metrics(metrics_doc):
    """Metric names in the first column of docs/metrics.md's tables."""
    names = set(re.findall(r"^\| `([a-z0-9_]+)`", metrics_doc, re.M))
    # "`process_open_fds` / `process_max_fds`" rows name two metrics.
    names |= set(re.findall(r"^\| `[a-z0-9_]+` / `([a-z0-9_]+)`", metrics_doc,
                            re.M))
    names.add("up")  # written by Prometheus itself for every target
    return names


def metric_ok(name, known):
    if name in known:
        return True
    return any(name.endswith(s) and name[:-len(s)] in known
               for s in HISTOGRAM_SUFFIXES)


def dashboard_queries(dashboard):
    """(panel title, expr) for every panel target and annotation."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            yield panel.get("title", "?"), target.get("expr", "")
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield f"annotation {annotation.get('name')}", annotation["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        if var.get("type") == "query" and query:
            yield f"variable ${var['name']}", query


def static_checks(dashboard, known, rules):
    errors = []
    if not dashboard.get("uid"):
        errors.append("dashboard has no uid (provisioning needs a stable one)")
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)) or None in ids:
        errors.append(f"panel ids are missing or repeated: {ids}")
    cells = {}
    for panel in dashboard.get("panels", []):
        g = panel.get("gridPos", {})
        title = panel.get("title", "?")
        if g.get("x", 0) + g.get("w", 0) > 24:
            errors.append(f"panel '{title}' is wider than the 24-column grid")
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    errors.append(f"panels '{cells[(x, y)]}' and '{title}' "
                                  f"overlap at x={x} y={y}")
                    break
                cells[(x, y)] = title
            else:
                continue
            break
        if panel.get("type") != "row":
            uid = panel.get("datasource", {}).get("uid")
            if uid != "${datasource}":
                errors.append(f"panel '{title}' uses datasource {uid!r}, "
                              f"not the ${{datasource}} variable")
            if not panel.get("targets"):
                errors.append(f"panel '{title}' has no query")
    checked = 0
    for where, expr in list(dashboard_queries(dashboard)) + rules:
        for name in METRIC_RE.findall(expr):
            checked += 1
            if not metric_ok(name, known):
                errors.append(f"{where}: reads '{name}', which docs/metrics.md "
                              f"does not list (renamed or misspelled?)")
    return errors, checked


def rule_queries(path):
    import yaml  # Debian: python3-yaml
    rules = []
    for group in yaml.safe_load(pathlib.Path(path).read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            rules.append((f"rule {name}", rule["expr"]))
    return rules


def live_checks(prometheus, dashboard, require_data):
    errors = []
    with_data = set()
    queried = []
    for where, expr in dashboard_queries(dashboard):
        if where.startswith("variable "):
            continue  # label_values() is Grafana syntax, not PromQL
        promql = expr
        for var, value in VARIABLES.items():
            promql = promql.replace(var, value)
        url = (f"{prometheus}/api/v1/query?"
               f"{urllib.parse.urlencode({'query': promql})}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except Exception as e:  # HTTP 400 carries Prometheus' parse error
            detail = e.read().decode() if hasattr(e, "read") else str(e)
            errors.append(f"{where}: Prometheus rejected {promql!r}: {detail}")
            continue
        if where not in queried:
            queried.append(where)
        if body["data"]["result"]:
            with_data.add(where)
    # A panel is empty when none of its queries returns a series.
    empty = [where for where in queried if where not in with_data]
    for title in require_data:
        if title in empty:
            errors.append(f"panel '{title}' shows no data on a live server")
    return errors, empty


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = pathlib.Path(__file__).resolve().parents[2]
    parser.add_argument("dashboard")
    parser.add_argument("--metrics-doc", default=root / "docs/metrics.md")
    parser.add_argument("--rules",
                        default=root / "deploy/monitoring/alerts.yml")
    parser.add_argument("--prometheus")
    parser.add_argument("--require-data", action="append",
                        help="panel title that must return data (live)")
    args = parser.parse_args()

    dashboard = json.loads(pathlib.Path(args.dashboard).read_text())
    known = documented_metrics(pathlib.Path(args.metrics_doc).read_text())
    rules = rule_queries(args.rules) if args.rules else []
    errors, checked = static_checks(dashboard, known, rules)
    n_panels = sum(1 for p in dashboard["panels"] if p.get("type") != "row")
    print(f"check_dashboard: {n_panels} panels, {len(rules)} rules, "
          f"{checked} metric references against {len(known)} documented "
          f"metrics")
    if args.prometheus and not errors:
        live_errors, empty = live_checks(
            args.prometheus, dashboard,
            args.require_data or DEFAULT_REQUIRE_DATA)
        errors += live_errors
        print(f"check_dashboard: every query evaluated by {args.prometheus}; "
              f"no data (expected where nothing failed): "
              f"{', '.join(empty) or 'none'}")
    for e in errors:
        print(f"FAIL: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
