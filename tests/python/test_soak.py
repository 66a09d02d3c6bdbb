"""tests/soak.py for a minute and a half: one broker, 4 workers, 3 concurrent searches
while workers are killed, stopped and restarted and the broker restarts once; every
search must give its fault-free result (the script checks and exits non-zero otherwise).
The full soak (20 minutes by default) is run by hand: docs/reliability.md."""

import os
import re
import subprocess
import sys

import pytest

import conftest as h

pytestmark = pytest.mark.long


def test_soak_short(ac_bin, tmp_path):
    if not os.path.exists(os.path.join(h.FMNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % h.FMNIST_DIR)
    p = subprocess.run([sys.executable, os.path.join(h.REPO, "tests", "soak.py"), "--minutes", "1.5", "--bin", ac_bin,
                        "--keep", str(tmp_path / "soak")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=1800)
    print(p.stdout)
    assert p.returncode == 0, p.stdout[-4000:]
    kills = re.search(r"survived (\d+) worker kills \(-9\), (\d+) worker stops \(SIGSTOP\), (\d+) broker", p.stdout)
    searches = re.search(r"(\d+) searches", p.stdout)
    assert kills and int(kills.group(1)) >= 1 and int(kills.group(3)) == 1, "chaos happened"
    assert searches and int(searches.group(1)) >= 3
