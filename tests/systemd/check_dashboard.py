#!/usr/bin/env python3
"""Checks monitoring/dashboard.json: valid JSON, unique panel ids, and
every panel query valid PromQL (Grafana's variables replaced, then each
expression checked by `promtool check rules` as a recording rule).

Usage: check_dashboard.py DASHBOARD PROMTOOL
"""
import json
import subprocess
import sys
import tempfile


def main():
    path, promtool = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        sys.exit("duplicate panel ids: %s" % ids)
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    n = 0
    for panel in dash["panels"]:
        if not panel.get("targets"):
            sys.exit("panel without a query: %s" % panel["title"])
        for t in panel["targets"]:
            expr = (t["expr"].replace("$__rate_interval", "5m")
                    .replace("$instance", ".*"))
            n += 1
            lines.append("      - record: dashboard:q%d" % n)
            lines.append("        expr: %s" % json.dumps(expr))
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as rules:
        rules.write("\n".join(lines) + "\n")
        rules.flush()
        rc = subprocess.run([promtool, "check", "rules", rules.name]).returncode
    if rc != 0:
        sys.exit("promtool rejected a dashboard query")
    print("dashboard: %d panels, %d queries ok" % (len(ids), n))


if __name__ == "__main__":
    main()
