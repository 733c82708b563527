"""`blupowd --help` against what each command accepts: every option the help names is accepted
by that command, and every option a command's table holds is in the help."""
import os
import re
import subprocess
import unittest

from sysenv import BUILD, SOURCE

BLUPOWD = os.path.join(BUILD, "src/blupowd")

# An argument that each command refuses after reading its options, so that nothing runs.
REFUSED = {"serve": ["--port", "no-port"], "verify": ["--port", "0"], "scan": ["--seconds", "0"]}


def help_options():
    """{command: [options]} from the help's usage lines (continuation lines included)."""
    text = subprocess.run([BLUPOWD, "--help"], capture_output=True, text=True, check=True).stdout
    usage = text.split("usage:\n", 1)[1].split("\n\n", 1)[0]
    commands, current = {}, None
    for line in usage.splitlines():
        m = re.match(r"\s+blupowd (\[serve\]|\w+)", line)
        if m:
            current = m.group(1).strip("[]")
            commands.setdefault(current, [])
        if current:
            commands[current] += re.findall(r"--[a-z-]+", line)
    commands.pop("--version", None)
    return commands


def table_options():
    """{command: {option: takes an argument}} from the getopt tables in the source."""
    def names(text):
        return {"--" + n: kind == "required" for n, kind in re.findall(r'\{"([a-z-]+)", (required|no)_argument', text)}

    with open(os.path.join(SOURCE, "src/cmd-serve.c")) as f:
        serve = f.read()
    with open(os.path.join(SOURCE, "src/cmd-verify.c")) as f:
        verify, scan = f.read().split("int cmd_scan(", 1)
    return {"serve": names(serve), "verify": names(verify), "scan": names(scan)}


class Help(unittest.TestCase):
    def test_every_option_in_the_help_is_accepted(self):
        options, taken = help_options(), table_options()
        self.assertEqual(sorted(options), ["decode", "scan", "serve", "verify"])
        for command in ("serve", "verify", "scan"):
            self.assertTrue(options[command], command)
            for option in options[command]:
                # An option the table lacks gets an argument, so that getopt judges the name alone.
                value = ["x"] if taken[command].get(option, True) else []
                args = [BLUPOWD, command, option] + value + REFUSED[command]
                r = subprocess.run(args, capture_output=True, text=True, timeout=10)
                self.assertNotIn("unrecognized option", r.stderr, args)
                self.assertEqual(r.returncode, 2, (args, r.stderr))

    def test_every_option_a_command_takes_is_in_the_help(self):
        shown, taken = help_options(), table_options()
        for command, names in taken.items():
            self.assertTrue(names, f"no option table found for {command}")
            self.assertEqual(sorted(set(shown[command])), sorted(names), command)

    def test_an_unknown_option_is_refused(self):
        r = subprocess.run([BLUPOWD, "verify", "--api", "http://x"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unrecognized option", r.stderr)


if __name__ == "__main__":
    unittest.main()
