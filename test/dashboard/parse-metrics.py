# Parse a metrics exposition read on stdin with the Prometheus project's own Python client parsers
# (Debian's python3-prometheus-client): argv[1] is "openmetrics" (the strict OpenMetrics 1.0 parser) or
# "prometheus" (the text format 0.0.4 parser). Prints the families as JSON: name, type, samples.
import json, sys
from prometheus_client.parser import text_string_to_metric_families as prometheus
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics

parse = openmetrics if sys.argv[1] == "openmetrics" else prometheus
out = [{"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
       for f in parse(sys.stdin.read())]
json.dump(out, sys.stdout)
