#!/usr/bin/python3
"""Checks the add-on package as the store and the add-on linter would: config.yaml and
build.yaml against the linter's JSON Schemas and its extra rules, option schema syntax,
translations, the AppArmor profile, shell scripts, stray config files, the Dockerfile."""
import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
failures = []
passed = 0


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what)


def load_schema(name):
    text = open(os.path.join(ROOT, "tests/data/schemas", name)).read()
    return json.loads(text)


config = yaml.safe_load(open(os.path.join(ROOT, "config.yaml")))
build = yaml.safe_load(open(os.path.join(ROOT, "build.yaml")))

for doc, schema in ((config, "addon-config.schema.json"), (build, "addon-build.schema.json")):
    errors = list(jsonschema.Draft7Validator(load_schema(schema)).iter_errors(doc))
    check(not errors, f"{schema}: {[e.message for e in errors]}")

# The linter's extra rules: no key set to its default, no watchdog.
defaults = {"init": True, "startup": "application", "boot": "auto", "ingress_port": 8099, "ingress_entry": "/",
            "host_dbus": False, "host_network": False, "apparmor": True, "panel_admin": True, "timeout": 10,
            "ingress": False, "hassio_api": False, "homeassistant_api": False, "privileged": [], "stage": "stable"}
for k, v in defaults.items():
    check(k not in config or config[k] != v, f"config.yaml: {k} is set to its default")
check("watchdog" not in config, "config.yaml: watchdog is obsolete")
check(config.get("host_dbus") is True and config.get("ingress") is True, "host_dbus and ingress")
for bad in ("host_network", "privileged", "full_access", "devices"):
    check(bad not in config, f"config.yaml must not ask for {bad}")
check(config.get("init") is False, "init: false (s6-overlay)")

# Supervisor option schema syntax.
ELEMENT = re.compile(r"^(?:(?P<type>bool|email|url|port|device(?:\(subsystem=[a-z]+\))?)|"
                     r"(?:str|password)(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?|"
                     r"int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?|"
                     r"float(?:\((?P<f_min>-?[\d\.]+)?,(?P<f_max>-?[\d\.]+)?\))?|"
                     r"match\((?P<match>.*)\)|list\((?P<list>.+)\))\??$")


def walk(schema, path):
    if isinstance(schema, dict):
        for k, v in schema.items():
            walk(v, f"{path}.{k}")
    elif isinstance(schema, list):
        check(len(schema) == 1, f"{path}: a list schema has one element")
        walk(schema[0], f"{path}[]")
    else:
        check(isinstance(schema, str) and ELEMENT.match(schema), f"{path}: '{schema}' is not Supervisor syntax")
        m = ELEMENT.match(schema or "")
        if m and m.group("match"):
            try:
                re.compile(m.group("match"))
                check(True, "")
            except re.error:
                check(False, f"{path}: bad regex")


walk(config["schema"], "schema")
# Options with a default are in the schema; optional ones (?) are not in options.
for k, v in config["options"].items():
    check(k in config["schema"], f"option {k} has no schema")
for k, v in config["schema"].items():
    if isinstance(v, str) and v.endswith("?"):
        check(k not in config["options"], f"optional option {k} must not have a default")

# Translations cover every option and nothing else.
tr = yaml.safe_load(open(os.path.join(ROOT, "translations/en.yaml")))
check(set(tr["configuration"]) == set(config["schema"]), f"translations: {set(tr['configuration']) ^ set(config['schema'])}")
for k, v in tr["configuration"].items():
    check(v.get("name") and v.get("description"), f"translation of {k} needs name and description")

# AppArmor: exactly one top-level profile.
profiles = [l for l in open(os.path.join(ROOT, "apparmor.txt")) if re.match(r"^profile\s", l)]
check(len(profiles) == 1, "apparmor.txt: exactly one top-level profile")

# No other file named config.yaml/yml/json.
files = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True).stdout.split()
stray = [f for f in files if re.search(r"(^|/)config\.(ya?ml|json)$", f) and f != "config.yaml"]
check(not stray, f"stray config files: {stray}")

# Shell scripts pass shellcheck.
scripts = [f for f in files if f.endswith(".sh") or f.startswith("addon/rootfs/") and "/s6-rc.d/" in f and
           os.path.basename(f) in ("run", "finish") or f.startswith("addon/rootfs/usr/lib/blupow/")] + [".ci/run"]
r = subprocess.run(["shellcheck", "-x"] + [os.path.join(ROOT, f) for f in scripts], capture_output=True, text=True)
check(r.returncode == 0, "shellcheck:\n" + r.stdout)

# The image is built by the project's own script, as CI builds it.
docker = open(os.path.join(ROOT, "Dockerfile")).read()
check("BLUPOW_DEPS=build ./scripts/install-deps.sh" in docker and "meson setup" in docker, "Dockerfile runs the project's build")
check(re.search(r"^ARG BUILD_FROM=\S+", docker, re.M) is not None, "Dockerfile: ARG BUILD_FROM with a default")
runtime = docker.split("FROM ${BUILD_FROM}", 1)[-1]
check("libmicrohttpd" not in runtime and "gnutls" not in runtime,
      "Dockerfile: the runtime stage installs no libmicrohttpd/GnuTLS (blupowd links its own, without HTTPS)")
check("HEALTHCHECK" in docker and "/api/v1/health" in docker, "Dockerfile: HEALTHCHECK on /api/v1/health")
for p in ("icon.png", "logo.png", "DOCS.md", "CHANGELOG.md", "README.md", "repository.yaml"):
    check(os.path.exists(os.path.join(ROOT, p)), f"{p} exists")
# The daemon as built: with the bundled libmicrohttpd it needs neither Debian's nor GnuTLS.
if len(sys.argv) > 3 and sys.argv[3] == "bundled":
    dyn = subprocess.run(["readelf", "-d", sys.argv[2]], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    check(needed and not [n for n in needed if "microhttpd" in n or "gnutls" in n],
          f"blupowd links no libmicrohttpd/GnuTLS shared library: {needed}")
check(re.search(r"^## \d+\.\d+\.\d+", open(os.path.join(ROOT, "CHANGELOG.md")).read(), re.M) is not None,
      "CHANGELOG.md has ## X.Y.Z headings")
check(f"## {config['version']}" in open(os.path.join(ROOT, "CHANGELOG.md")).read(), "CHANGELOG has the current version")

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
