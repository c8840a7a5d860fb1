#!/usr/bin/env python3
"""Validate FHIR R4 (4.0.1) JSON with an implementation that is not Vigil's.

Usage:
    python3 tools/fhir/validate.py [FILE ...]    # one resource per file
    python3 tools/fhir/validate.py < resource.json

Each resource is parsed by the `fhir.resources` models for FHIR 4.0.1
(pinned in requirements.txt): types, cardinalities, required elements,
unknown elements, primitive formats, and every resource inside a Bundle
entry or `contained`. On top of that, a few checks of the profiles Vigil
claims that the models cannot know (the FHIR R4 vital-signs profile, the
NHS number, Bundle and OperationOutcome basics) are made here, marked
"profile:".

Prints "ok <ResourceType>/<id>" per valid input and exits 0; otherwise
prints each error to stderr and exits 1. Exits 2 when the validator itself
cannot run (missing dependency), naming the install command.

Dependencies are looked up first in tools/fhir/.deps (installed there with
`python3 -m pip install --target tools/fhir/.deps -r tools/fhir/requirements.txt`,
so they cannot clash with another pydantic in the system's Python), then in
the ordinary environment.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEPS = os.path.join(HERE, ".deps")
INSTALL = "python3 -m pip install --target tools/fhir/.deps -r tools/fhir/requirements.txt"
if os.path.isdir(DEPS):
    sys.path.insert(0, DEPS)

try:
    import fhir.resources as fr
    from fhir.resources import get_fhir_model_class
except Exception as e:  # noqa: BLE001 - any import failure means "not installed right"
    print(f"fhir.resources (FHIR R4 4.0.1) not importable ({e}); install it with: {INSTALL}", file=sys.stderr)
    sys.exit(2)

if getattr(fr, "__fhir_version__", None) != "4.0.1":
    print(
        f"fhir.resources {getattr(fr, '__version__', '?')} models FHIR {getattr(fr, '__fhir_version__', '?')}, "
        f"not R4 4.0.1; install the pinned version with: {INSTALL}",
        file=sys.stderr,
    )
    sys.exit(2)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# FHIR R4 vital-signs profiles: profile -> (required LOINC code, allowed UCUM units).
VITAL_PROFILES = {
    "http://hl7.org/fhir/StructureDefinition/heartrate": ("8867-4", {"/min"}),
    "http://hl7.org/fhir/StructureDefinition/resprate": ("9279-1", {"/min"}),
    "http://hl7.org/fhir/StructureDefinition/oxygensat": ("2708-6", {"%"}),
    "http://hl7.org/fhir/StructureDefinition/bodytemp": ("8310-5", {"Cel", "[degF]"}),
    "http://hl7.org/fhir/StructureDefinition/bodyweight": ("29463-7", {"kg", "g", "[lb_av]"}),
    "http://hl7.org/fhir/StructureDefinition/bp": ("85354-9", {"mm[Hg]"}),
}


def nhs_number_valid(n):
    """NHS number: 10 digits, modulus-11 check digit."""
    if not (isinstance(n, str) and len(n) == 10 and n.isdigit()):
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(n[:9]))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(n[9])


def codes(concept, system=None):
    return [c.get("code") for c in (concept or {}).get("coding", []) if system is None or c.get("system") == system]


def check_quantity(q, units, where, errors):
    if q.get("system") != UCUM:
        errors.append(f"profile: {where}: valueQuantity.system must be {UCUM}")
    if q.get("code") not in units:
        errors.append(f"profile: {where}: valueQuantity.code {q.get('code')!r} not one of {sorted(units)}")
    if "value" not in q:
        errors.append(f"profile: {where}: valueQuantity.value missing")


def check_observation(r, where, errors):
    profiles = (r.get("meta") or {}).get("profile", [])
    value_keys = [k for k in r if k.startswith("value")]
    has_member = bool(r.get("hasMember"))
    components = r.get("component", [])
    # obs-6: dataAbsentReason only when there is no value; obs-7: code not repeated in components.
    if value_keys and "dataAbsentReason" in r:
        errors.append(f"{where}: obs-6: dataAbsentReason with a value")
    for c in components:
        cv = [k for k in c if k.startswith("value")]
        if not cv and "dataAbsentReason" not in c:
            errors.append(f"profile: {where}: vs-3: a component needs a value or a dataAbsentReason")
        if cv and "dataAbsentReason" in c:
            errors.append(f"{where}: obs-6: component with both a value and a dataAbsentReason")
    if "http://hl7.org/fhir/StructureDefinition/vitalsigns" in profiles:
        cats = [c for cat in r.get("category", []) for c in cat.get("coding", [])]
        if not any(c.get("system") == OBS_CATEGORY and c.get("code") == "vital-signs" for c in cats):
            errors.append(f"profile: {where}: vital signs need category {OBS_CATEGORY}|vital-signs")
        if not (r.get("subject") or {}).get("reference", "").startswith("Patient/"):
            errors.append(f"profile: {where}: vital signs need subject Patient")
        if "effectiveDateTime" not in r and "effectivePeriod" not in r:
            errors.append(f"profile: {where}: vs-1: vital signs need effective[x]")
        if not value_keys and "dataAbsentReason" not in r and not has_member and not components:
            errors.append(f"profile: {where}: vs-2: no value, dataAbsentReason, hasMember or component")
    for p in profiles:
        if p not in VITAL_PROFILES:
            continue
        code, units = VITAL_PROFILES[p]
        if code not in codes(r.get("code"), LOINC):
            errors.append(f"profile: {where}: {p} requires code {LOINC}|{code}")
        if p.endswith("/bp"):
            comp_codes = [codes(c.get("code"), LOINC) for c in components]
            for need in ("8480-6", "8462-4"):
                matching = [c for c, cc in zip(components, comp_codes) if need in cc]
                if len(matching) != 1:
                    errors.append(f"profile: {where}: bp needs exactly one component {LOINC}|{need}")
                elif "valueQuantity" in matching[0]:
                    check_quantity(matching[0]["valueQuantity"], units, f"{where} component {need}", errors)
        elif "valueQuantity" in r:
            check_quantity(r["valueQuantity"], units, where, errors)
        elif "dataAbsentReason" not in r:
            errors.append(f"profile: {where}: {p} needs valueQuantity or dataAbsentReason")
        if p.endswith("/oxygensat") and "59408-5" not in codes(r.get("code"), LOINC):
            # Not required by the R4 profile, but Vigil claims pulse oximetry.
            errors.append(f"profile: {where}: SpO2 from a pulse oximeter should also carry {LOINC}|59408-5")
    # A contained resource must be referenced from the container (dom-3).
    for c in r.get("contained", []):
        ref = "#" + str(c.get("id"))
        if ref not in json.dumps(r):
            errors.append(f"{where}: dom-3: contained {c.get('resourceType')}/{c.get('id')} is not referenced")


def check_patient(r, where, errors):
    nhs = [i for i in r.get("identifier", []) if i.get("system") == NHS_NUMBER]
    if len(nhs) != 1:
        errors.append(f"profile: {where}: exactly one identifier with system {NHS_NUMBER} expected")
    elif not nhs_number_valid(nhs[0].get("value")):
        errors.append(f"profile: {where}: NHS number fails the modulus-11 check")


def check_bundle(r, where, errors):
    kind = r.get("type")
    for i, e in enumerate(r.get("entry", [])):
        res = e.get("resource")
        if res is None:
            errors.append(f"{where}: entry[{i}] has no resource")
            continue
        full = e.get("fullUrl", "")
        # bdl-7: fullUrl unique; bdl-8: absolute and not version-specific.
        if "/_history/" in full:
            errors.append(f"{where}: bdl-8: entry[{i}].fullUrl is version-specific")
        if not (full.startswith("http://") or full.startswith("https://") or full.startswith("urn:")):
            errors.append(f"{where}: entry[{i}].fullUrl {full!r} is not absolute")
        if kind == "searchset" and "search" not in e:
            errors.append(f"{where}: bdl-2: searchset entry[{i}] without search")
        if kind != "searchset" and "search" in e:
            errors.append(f"{where}: bdl-2: entry[{i}].search only in a searchset")
        check(res, f"{where} entry[{i}] {res.get('resourceType')}/{res.get('id')}", errors)
    urls = [e.get("fullUrl") for e in r.get("entry", []) if e.get("fullUrl")]
    if len(urls) != len(set(urls)):
        errors.append(f"{where}: bdl-7: duplicate fullUrl")
    if kind == "searchset" and r.get("total") is not None and r["total"] != len(r.get("entry", [])):
        errors.append(f"{where}: total {r['total']} but {len(r.get('entry', []))} entries (Vigil does not page)")


def check(r, where, errors):
    """Profile checks on a resource (already parsed by the models)."""
    rt = r.get("resourceType")
    if rt == "Observation":
        check_observation(r, where, errors)
    elif rt == "Patient":
        check_patient(r, where, errors)
    elif rt == "Bundle":
        check_bundle(r, where, errors)
    elif rt == "OperationOutcome" and not r.get("issue"):
        errors.append(f"{where}: OperationOutcome without an issue")


def validate(text, name):
    """Errors (empty when valid) and a label for one JSON document."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return [f"{name}: not JSON: {e}"], name
    if not isinstance(data, dict) or "resourceType" not in data:
        return [f"{name}: not a FHIR resource (no resourceType)"], name
    rt = data["resourceType"]
    label = f"{rt}/{data.get('id', '')}"
    try:
        model = get_fhir_model_class(rt)
    except Exception:  # noqa: BLE001
        return [f"{name}: unknown resourceType {rt!r} in FHIR 4.0.1"], label
    errors = []
    try:
        model.parse_obj(data)
    except Exception as e:  # pydantic.ValidationError, or a model-level error
        errors.extend(f"{name} {label}: fhir.resources: {line}" for line in str(e).splitlines())
    check(data, f"{name} {label}", errors)
    return errors, label


def main(argv):
    inputs = []
    if len(argv) > 1:
        for path in argv[1:]:
            with open(path, encoding="utf-8") as f:
                inputs.append((f.read(), path))
    else:
        inputs.append((sys.stdin.read(), "<stdin>"))
    failed = False
    for text, name in inputs:
        errors, label = validate(text, name)
        if errors:
            failed = True
            for e in errors:
                print(e, file=sys.stderr)
        else:
            print(f"ok {label}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
