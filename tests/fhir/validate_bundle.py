"""Validates FHIR R4 Bundles exported by OptoVault with an independent implementation: the
`fhir.resources` package's R4B models (R4B's VisionPrescription, Observation, Patient and
Practitioner are R4's). Each entry is validated as its own resource type, and the R4 rules the
models do not enforce for VisionPrescription are checked here.

usage: python validate_bundle.py BUNDLE.json [BUNDLE.json ...]
"""
import json
import sys

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

VP_STATUS = {"active", "cancelled", "draft", "entered-in-error"}
UCUM = "http://unitsofmeasure.org"


def check_vision_prescription(vp: dict, where: str) -> list[str]:
    problems = []
    for field in ("status", "created", "patient", "dateWritten", "prescriber"):
        if field not in vp:
            problems.append(f"{where}: {field} is required")
    if vp.get("status") not in VP_STATUS:
        problems.append(f"{where}: status {vp.get('status')!r}")
    specs = vp.get("lensSpecification") or []
    if not specs:
        problems.append(f"{where}: at least one lensSpecification")
    for i, spec in enumerate(specs):
        w = f"{where}.lensSpecification[{i}]"
        if "product" not in spec:
            problems.append(f"{w}: product is required")
        if spec.get("eye") not in ("right", "left"):
            problems.append(f"{w}: eye {spec.get('eye')!r}")
        for j, prism in enumerate(spec.get("prism") or []):
            if "amount" not in prism or prism.get("base") not in ("up", "down", "in", "out"):
                problems.append(f"{w}.prism[{j}]: amount and base up|down|in|out")
        duration = spec.get("duration")
        if duration is not None and (duration.get("system") != UCUM or not duration.get("code")):
            problems.append(f"{w}.duration: a UCUM code")
    return problems


def validate(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    problems = []
    if data.get("resourceType") != "Bundle":
        return [f"{path}: not a Bundle"]
    Bundle.model_validate(data)
    counts = {}
    for i, entry in enumerate(data.get("entry") or []):
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        counts[kind] = counts.get(kind, 0) + 1
        get_fhir_model_class(kind).model_validate(resource)
        if kind == "VisionPrescription":
            problems += check_vision_prescription(resource, f"{path}: entry[{i}]")
        if kind == "Observation":
            for field in ("status", "code", "subject"):
                if field not in resource:
                    problems.append(f"{path}: entry[{i}] Observation.{field} is required")
    print(f"{path}: valid R4 Bundle, {sum(counts.values())} resources {dict(sorted(counts.items()))}")
    return problems


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    problems = []
    for path in sys.argv[1:]:
        try:
            problems += validate(path)
        except Exception as e:  # a model's ValidationError names the field
            problems.append(f"{path}: {e}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
