"""docs/user-guide.md stays in step with the program: its option table of
`autocalib quantize` lists exactly the options `autocalib quantize --help` prints,
aliases included, and the commands it names exist."""

import os
import re
import subprocess

from conftest import REPO

GUIDE = os.path.join(REPO, "docs", "user-guide.md")
TABLE_HEADING = "## Every option of `autocalib quantize`"


def help_options(ac_bin, command):
    """Every option name (with its aliases) that `autocalib COMMAND --help` prints."""
    out = subprocess.run([ac_bin, command, "--help"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    names = set()
    for line in text.splitlines():
        if re.match(r"^  --", line):  # "  --name S, --alias" (descriptions are indented 6)
            names.update(re.findall(r"--([A-Za-z0-9_-]+)", line))
    return names


def guide_section(heading):
    text = open(GUIDE).read()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end >= 0 else len(text)]


def table_options(section):
    """Option names written in the first column of the section's table rows."""
    names = set()
    for line in section.splitlines():
        if line.startswith("| `--"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"--([A-Za-z0-9_-]+)", first_cell))
    return names


def test_option_table_lists_every_quantize_option(ac_bin):
    printed = help_options(ac_bin, "quantize")
    assert len(printed) > 40, "too few options parsed from --help: %s" % sorted(printed)
    listed = table_options(guide_section(TABLE_HEADING))
    assert printed - listed == set(), "options missing from the user guide's table"
    assert listed - printed == set(), "the user guide's table lists options the program lacks"


def code_in(text):
    """The guide's code: fenced blocks, indented lines and inline `spans`."""
    fenced = re.findall(r"```.*?\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(fenced + inline)


def test_commands_the_guide_names_exist(ac_bin):
    """Every `autocalib COMMAND` the guide's code shows is a command the program has."""
    named = set(re.findall(r"(?:^|[\s/`])autocalib ([a-z][a-z-]*)", code_in(open(GUIDE).read()), re.M))
    assert {"quantize", "dataset", "export-onnx", "worker", "broker"} <= named
    for command in sorted(named):
        out = subprocess.run([ac_bin, command, "--help"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, "%s: %s" % (command, out.stderr)


def test_guide_covers_the_workflow():
    """The sections a user of the tool looks for are there."""
    text = open(GUIDE).read()
    for heading in ("## Preparing calibration data", "## Test data: three ways",
                    "## Quantizing: `autocalib quantize`", "### The search (default) and `--no_search`",
                    "### The farm", "## Reading the report", "## Compiling the bmodel with tpu-mlir",
                    TABLE_HEADING):
        assert heading in text, heading
    for word in ("lmdb_save", "refresh_lmdb", "150–300", "--test_source remote", "--auto_calib",
                 "calibration_table", "qtable", "model_deploy.py"):
        assert word in text, word
