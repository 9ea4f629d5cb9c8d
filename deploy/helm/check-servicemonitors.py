"""Checks the ServiceMonitors on stdin (YAML) against the models cloudcoil generated from prometheus-operator's
CRD schemas: kubernetes-validate has no schema for them. The models ignore fields they do not know, so a field
the validated object dropped is reported as unknown. Exits 1 on any fault. Run by tests/cli/helm.rs with the
venv of deploy/helm/requirements-test.txt."""
import sys

import pydantic
import yaml
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor


def unknown(given, kept, path):
    """The paths of `given` that `kept` (the validated object, dumped) no longer has."""
    if isinstance(given, dict) and isinstance(kept, dict):
        return [found for key, value in given.items()
                for found in ([f"{path}.{key}"] if key not in kept else unknown(value, kept[key], f"{path}.{key}"))]
    if isinstance(given, list) and isinstance(kept, list):
        return [found for i, (a, b) in enumerate(zip(given, kept)) for found in unknown(a, b, f"{path}[{i}]")]
    return []


failed = False
for document in yaml.safe_load_all(sys.stdin):
    try:
        kept = ServiceMonitor.model_validate(document).model_dump(by_alias=True, exclude_unset=True, mode="json")
    except pydantic.ValidationError as error:
        print(error)
        failed = True
        continue
    for field in unknown(document, kept, document["metadata"]["name"]):
        print(f"unknown field {field}")
        failed = True
sys.exit(1 if failed else 0)
