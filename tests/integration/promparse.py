"""Parses Prometheus text exposition from stdin with prometheus_client's
own parser (Debian's python3-prometheus-client), the reference reading of
the format, and prints one JSON object: {"name{k=v,...}": value}, labels
sorted. A syntax error makes the parser raise, and this exit non-zero."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
