"""The Home Assistant package from /api/v1/homeassistant/package.yaml, checked the way Home
Assistant uses it: YAML that yamllint accepts, and every template rendered with Jinja2 against the
live API responses of the resource it belongs to."""
import json
import unittest
import urllib.request

import jinja2
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

import sysenv

# Home Assistant's sensor device classes and the units each accepts (sensor/const.py,
# DEVICE_CLASS_UNITS), for the classes an energy system has; and the state classes each allows.
UNITS = {
    "apparent_power": {"VA", "mVA", "kVA"},
    "battery": {"%"},
    "current": {"A", "mA"},
    "duration": {"d", "h", "min", "s", "ms"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "power_factor": {"%", None},
    "reactive_power": {"var", "kvar"},
    "temperature": {"°C", "°F", "K"},
    "voltage": {"µV", "mV", "V", "kV", "MV"},
}
STATE_CLASSES = {"energy": {"total", "total_increasing"}, "duration": {"measurement", "total", "total_increasing"},
                 None: {"measurement", "total", "total_increasing"}}
ENERGY_UNITS = {"Wh", "kWh", "MWh"}

GHOST = {"name": "Garage battery", "address": "F8:55:48:00:00:01", "type": "battery", "modbus_id": 48}


def ha_environment():
    """Jinja2 for these templates. Strict: where Home Assistant would log a template warning or
    error on every scan, this fails the test."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def ha_bool(text):
    """How Home Assistant reads a rendered availability or binary_sensor template."""
    return text.strip().lower() in ("true", "on", "yes", "1", "open", "home")


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env(devices=sysenv.DEMO_DEVICES + [GHOST])
        cls.env.start_daemon()
        cls.env.wait_all_online()
        status, body, headers = cls.env.request("/api/v1/homeassistant/package.yaml")
        assert status == 200, status
        cls.content_type = headers["Content-Type"]
        cls.text = body.decode()
        cls.package = yaml.safe_load(cls.text)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def resources(self):
        for res in self.package["rest"]:
            status, body, _ = self.env.request(res["resource"].replace(f"http://127.0.0.1:{self.env.port}", ""))
            self.assertEqual(status, 200, res["resource"])
            yield res, body.decode(), json.loads(body)

    def test_yamllint_clean(self):
        # Home Assistant's own rules: yamllint's defaults, with long template lines allowed.
        conf = YamlLintConfig("extends: default\nrules:\n  line-length: {max: 250}\n")
        problems = [f"{p.line}:{p.column} {p.rule} {p.desc}" for p in linter.run(self.text, conf)]
        self.assertEqual(problems, [])
        self.assertIn("yaml", self.content_type)

    def test_one_resource_per_device_on_the_requests_host(self):
        urls = [r["resource"] for r in self.package["rest"]]
        devices = [d["id"] for d in self.env.get_json("/api/v1/devices")["devices"]]
        self.assertEqual(urls, [f"http://127.0.0.1:{self.env.port}/api/v1/devices/{d}" for d in devices])
        for r in self.package["rest"]:
            self.assertGreaterEqual(r["scan_interval"], 10)
            self.assertEqual(set(r), {"resource", "scan_interval", "timeout", "sensor", "binary_sensor"})

    def test_unique_ids_stable_and_unique(self):
        ids = [s["unique_id"] for r in self.package["rest"] for s in r["sensor"] + r["binary_sensor"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertIn("blupow_f855481b1bb7_49_battery_voltage", ids)
        self.assertIn("blupow_609866edfc11_255_connected", ids)
        # Asking again gives the same package.
        self.assertEqual(self.env.request("/api/v1/homeassistant/package.yaml")[1].decode(), self.text)

    def test_device_class_unit_and_state_class_pairs(self):
        energy = []
        for res in self.package["rest"]:
            for s in res["sensor"]:
                dc, unit, sc = s.get("device_class"), s.get("unit_of_measurement"), s.get("state_class")
                if dc:
                    self.assertIn(dc, UNITS, s["name"])
                    self.assertIn(unit, UNITS[dc], s["name"])
                if sc:
                    self.assertIn(sc, STATE_CLASSES.get(dc, {"measurement"}), s["name"])
                if dc == "energy":
                    energy.append(s["name"])
                    self.assertIn(unit, ENERGY_UNITS, "the Energy dashboard offers only Wh/kWh/MWh")
                    self.assertIn(sc, ("total", "total_increasing"))
            for b in res["binary_sensor"]:
                want = ("connectivity",) if b["unique_id"].endswith("_connected") else ("problem", None)
                self.assertIn(b.get("device_class"), want, b["name"])
        self.assertIn("Rover Energy generated", energy)

    def test_templates_render_valid_states_for_online_devices(self):
        env = ha_environment()
        rendered = 0
        for res, raw, value_json in self.resources():
            if value_json["id"] == "garage-battery":
                continue
            self.assertEqual(value_json["state"], "online", value_json["id"])
            for s in res["sensor"]:
                ctx = {"value": raw, "value_json": value_json}
                self.assertTrue(ha_bool(env.from_string(s["availability"]).render(ctx)), s["name"])
                state = env.from_string(s["value_template"]).render(ctx)
                self.assertTrue(0 < len(state) <= 255, (s["name"], state))
                if "unit_of_measurement" in s or "state_class" in s:
                    float(state)  # a number, or Home Assistant rejects the state
                rendered += 1
            connected = [b for b in res["binary_sensor"] if b["unique_id"].endswith("_connected")]
            self.assertEqual(len(connected), 1)
            self.assertTrue(ha_bool(env.from_string(connected[0]["value_template"]).render(value_json=value_json)))
        self.assertGreater(rendered, 100)

    def test_every_status_bit_a_binary_sensor_problem_only_where_it_is_one(self):
        env = ha_environment()
        seen = set()
        for res, raw, value_json in self.resources():
            by_uid = {b["unique_id"]: b for b in res["binary_sensor"]}
            uid = next(u for u in by_uid if u.endswith("_connected"))[:-len("_connected")]
            for key, r in value_json["readings"].items():
                if r["kind"] != "bits":
                    continue
                self.assertTrue(set(r["problem_bits"]) <= set(r["bits"]), key)
                for bit in r["bits"]:
                    b = by_uid[f"{uid}_{key}_{bit}"]
                    self.assertEqual(b.get("device_class"), "problem" if bit in r["problem_bits"] else None, bit)
                    self.assertIn(bit.replace("_", " "), b["name"])
                    ctx = {"value_json": value_json}
                    self.assertEqual(ha_bool(env.from_string(b["value_template"]).render(ctx)), bit in r["value"],
                                     (key, bit, r["value"]))
                    self.assertEqual(ha_bool(env.from_string(b["availability"]).render(ctx)),
                                     value_json["available"])
                    seen.add((value_json["type"] if "type" in value_json else value_json["id"], key, bit))
        names = {(k, b) for _, k, b in seen}
        # A battery's MOSFETs are states; its short circuit and a controller's faults are problems.
        self.assertIn(("battery_status1", "charge_mosfet"), names)
        self.assertIn(("controller_faults", "load_short_circuit"), names)
        for res, raw, value_json in self.resources():
            for key, r in value_json["readings"].items():
                if key == "battery_status1":
                    self.assertNotIn("charge_mosfet", r["problem_bits"])
                    self.assertIn("short_circuit", r["problem_bits"])
                if key == "charge_discharge_status":
                    self.assertEqual(r["problem_bits"], [])

    def test_values_match_the_api(self):
        env = ha_environment()
        for res, raw, value_json in self.resources():
            if value_json["id"] != "rover":
                continue
            by_id = {s["unique_id"]: s for s in res["sensor"]}
            s = by_id["blupow_609866edfc11_255_battery_voltage"]
            self.assertEqual(float(env.from_string(s["value_template"]).render(value_json=value_json)),
                             value_json["readings"]["battery_voltage"]["value"])

    def test_unreachable_device_is_unavailable_not_an_error(self):
        env = ha_environment()
        ghost = [(r, raw, v) for r, raw, v in self.resources() if v["id"] == "garage-battery"]
        self.assertEqual(len(ghost), 1)
        res, raw, value_json = ghost[0]
        self.assertNotEqual(value_json["state"], "online")
        self.assertTrue(res["sensor"], "sensors are listed before the first successful poll")
        for s in res["sensor"]:
            ctx = {"value": raw, "value_json": value_json}
            self.assertFalse(ha_bool(env.from_string(s["availability"]).render(ctx)), s["name"])
            env.from_string(s["value_template"]).render(ctx)
        self.assertFalse(ha_bool(env.from_string(res["binary_sensor"][0]["value_template"]).render(
            value_json=value_json)))

    def test_a_failed_fetch_renders_unavailable_without_an_error(self):
        """When the add-on cannot be reached Home Assistant renders the templates with no
        value_json: every one must render (unavailable, off), never raise."""
        env = ha_environment()
        for res, raw, value_json in self.resources():
            for s in res["sensor"]:
                self.assertFalse(ha_bool(env.from_string(s["availability"]).render()), s["name"])
                self.assertEqual(env.from_string(s["value_template"]).render(), "")
            for b in res["binary_sensor"]:
                self.assertFalse(ha_bool(env.from_string(b["value_template"]).render()))

    def test_availability_is_the_apis_own(self):
        """The package holds no freshness rule of its own: an entity is available exactly while
        the API says the device is (its own schedule decides), and an answer without the field
        is never taken for available."""
        env = ha_environment()
        for res, raw, value_json in self.resources():
            if value_json["id"] != "rover":
                continue
            s = res["sensor"][0]
            self.assertIs(value_json["available"], True)
            self.assertTrue(ha_bool(env.from_string(s["availability"]).render(value_json=value_json)))
            value_json["age_s"] = 31.0  # older than the old global 30 s rule, still in its window
            self.assertTrue(ha_bool(env.from_string(s["availability"]).render(value_json=value_json)))
            value_json["available"] = False
            self.assertFalse(ha_bool(env.from_string(s["availability"]).render(value_json=value_json)))
            value_json["available"] = "true"
            self.assertFalse(ha_bool(env.from_string(s["availability"]).render(value_json=value_json)))
            del value_json["available"]
            self.assertFalse(ha_bool(env.from_string(s["availability"]).render(value_json=value_json)))
            return
        self.fail("no rover in the package's resources")

if __name__ == "__main__":
    unittest.main()
