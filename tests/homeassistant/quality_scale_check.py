"""The integration's quality_scale.yaml against Home Assistant's own rules (hassfest checks it
only for core integrations): the schema, each rule's validator where one exists, and every rule
of the declared tier done or exempt. Run inside the Home Assistant root from /opt/ha.

    quality_scale_check.py PATH/custom_components/blupow"""
import json
import pathlib
import sys

from homeassistant.util.yaml import load_yaml_dict
from script.hassfest import quality_scale as qs
from script.hassfest.model import Config, Integration

# Validators that look for files of Home Assistant's own tree, which a custom integration
# cannot have; what they stand for is checked by BluPow's tests instead (named here).
CORE_ONLY = {
    "strict-typing": "mypy --strict over the integration (run.py)",
}


def main(path: str) -> int:
    root = pathlib.Path(path)
    config = Config(root=pathlib.Path("/opt/ha"), specific_integrations=[root], action="validate",
                    requirements=False)
    integration = Integration(root, _config=config)
    integration.load_manifest()
    data = load_yaml_dict(str(root / "quality_scale.yaml"))
    qs.SCHEMA(data)
    rules = data["rules"]
    done = {n for n, v in rules.items() if (v["status"] if isinstance(v, dict) else v) == "done"}
    met = {n for n, v in rules.items() if (v["status"] if isinstance(v, dict) else v) in ("done", "exempt")}
    errors = []
    for name in sorted(done):
        validator = qs.VALIDATORS.get(name)
        if not validator or name in CORE_ONLY:
            continue
        errors += [f"[{name}] {e}" for e in validator.validate(config, integration, rules_done=done) or []]
    tier = qs.ScaledQualityScaleTiers[json.loads((root / "manifest.json").read_text())["quality_scale"].upper()]
    for scale in qs.ScaledQualityScaleTiers:
        if scale > tier:
            break
        errors += [f"[{r}] required for {scale.name.lower()}, not done or exempt" for r in
                   sorted(set(qs.SCALE_RULES[scale]) - met)]
    errors += [f"{e.plugin}: {e.error}" for e in integration.errors]
    for e in errors:
        print(e)
    print(f"quality scale {tier.name.lower()}: {len(done)} done, {len(met - done)} exempt, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
