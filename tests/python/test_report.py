"""report.html and the run as a person sees it, on the bundled Fashion-MNIST model and
Debian's Fashion-MNIST data.

- report.html parses (python's html.parser, tags balanced), loads nothing from elsewhere, and
  holds the charts and tables report.json describes: one mark per candidate in the search
  timeline, the budget line, one sensitivity row per layer with statistics or in fp32 (fp32
  rows marked), one table row per candidate and per layer.
- In headless Chromium (Debian's chromium; skipped with a message when it is absent) the page
  renders: a screenshot that is not blank and shows the charts' colours, the DOM after
  parsing has the same SVG elements, and it prints to PDF.
- Progress: plain timestamped lines when stdout is not a terminal, a bar redrawn with
  carriage returns on a terminal (a pty) that ends with a newline; --quiet prints only the
  final line; --verbose adds the per-layer plan; the summary table and artefact list at the end.

The search used here takes several rounds: with --accept_int8_decay 0 and a given fp32 score
above what the model scores on these 64 test samples (as in test_farm), no plan meets the
budget, so auto mode goes through the fast rounds (with the screen of options on the subset)
and a pass/fail check.
"""

import fcntl
import html.parser
import collections
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import termios

import pytest

import conftest as h

FMNIST = h.FMNIST_DIR
MODEL = os.path.join(h.MODELS, "fmnist_plain.onnx")
FORCED = "/classifier/classifier.3/Gemm"   # kept in fp32 by --fp32_layers: an fp32 row
STAMP = r"\[\s*\d+\.\d\ds\] "
VOID = {"meta", "br", "hr", "img", "link", "input", "col", "wbr"}


def quantize_cmd(ac_bin, out, *extra, test_batches=4):
    img = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
    if not os.path.exists(img):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % img)
    return [ac_bin, "quantize", "--model", MODEL, "--output_dir", str(out),
            "--calib_idx_images", img, "--calib_iterations", "4",
            "--test_idx_images", os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"),
            "--test_idx_labels", os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"),
            "--test_iterations", str(test_batches), "--data_preproccess_str", "mean_value=72.93,scale=0.011109",
            "--input_data_shape", "(16,1,28,28)", "--shard_batches", "2"] + list(extra)


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, "exit %d\n%s\n%s" % (p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p


@pytest.fixture(scope="module")
def search(ac_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    p = run(quantize_cmd(ac_bin, out, "--auto_calib", "--accept_int8_decay", "0", "--fp32_score", "0.95",
                         "--fp32_layers", FORCED))
    rep = json.load(open(out / "report.json"))
    assert rep["rounds"] >= 3, "the search needs several rounds for these tests: %s" % rep["rounds"]
    return out, p.stdout, rep


# ------------------------------------------------------------------ the page as a tree

class Page(html.parser.HTMLParser):
    """Every element with its attributes and the ids/classes of its ancestors; tags must balance."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.elements, self.errors, self.styles, self.texts = [], [], [], [], []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append("unclosed: %s" % [t for t, _ in self.stack])

    def _record(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, [x for _, x in self.stack]))
        return a

    def handle_starttag(self, tag, attrs):
        a = self._record(tag, attrs)
        if tag not in VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self._record(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append("</%s> does not close <%s>" % (tag, self.stack[-1][0] if self.stack else None))
            return
        self.stack.pop()

    def handle_data(self, data):
        self.texts.append(data)
        if self.stack and self.stack[-1][0] == "style":
            self.styles.append(data)

    def find(self, tag, cls=None, within=None):
        """Elements `tag` whose class list holds every word of cls, inside an ancestor with id `within`."""
        want = set(cls.split()) if cls else set()
        return [a for t, a, anc in self.elements if t == tag and want <= set(a.get("class", "").split())
                and (within is None or any(x.get("id") == within for x in anc))]


def check_report_tree(page, rep):
    assert not page.errors, page.errors[:5]
    assert page.find("svg") and [a for a in page.find("svg") if a.get("id") == "sensitivity-chart"]
    assert [a for a in page.find("svg") if a.get("id") == "timeline-chart"]
    cands = rep["candidates"]
    marks = page.find("g", "cand", within="timeline-chart")
    assert len(marks) == len(cands) == len(page.find("tr", within="candidates")) - 1  # - the header row
    assert [int(m["data-index"]) for m in marks] == list(range(len(cands)))
    assert [int(m["data-round"]) for m in marks] == [c["round"] for c in cands]
    decided = [i for i, c in enumerate(cands) if c.get("decided") == "fail" and c.get("int8_score") is None]
    assert decided, "the pass/fail round should decide a candidate without a score"
    assert [int(m["data-index"]) for m in page.find("g", "cand decided-fail")] == decided
    subset = [i for i, c in enumerate(cands) if "subset_score" in c]
    assert subset and [int(m["data-index"]) for m in page.find("g", "cand subset")] == subset
    chosen = page.find("g", "cand chosen")
    assert len(chosen) == 1 and int(chosen[0]["data-index"]) == rep["chosen_candidate"]
    assert len(page.find("g", "round", within="timeline-chart")) == rep["rounds"]
    assert [a for a in page.find("line") if a.get("id") == "budget-line"]
    charted = [l for l in rep["layers"] if "cosine" in l or l["mode"] == "fp32"]
    assert len(page.find("g", "layer-row", within="sensitivity-chart")) == len(charted)
    assert len(page.find("g", "layer-row fp32")) == len(rep["fp32_layers"]) >= 1
    assert len(page.find("tr", within="layers")) == len(rep["layers"]) + 1


def test_report_html_parses_offline_and_matches_the_json(search):
    out, _, rep = search
    text = open(out / "report.html", encoding="utf-8").read()   # strict UTF-8
    page = Page(text)
    check_report_tree(page, rep)
    # Nothing from elsewhere: no scripts or external elements, no addresses anywhere.
    tags = {t for t, _, _ in page.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}, tags
    for tag, attrs, _ in page.elements:
        for k, v in attrs.items():
            assert not (k in ("href", "src", "xlink:href", "action") and v), (tag, k, v)
            assert k != "style" or "url(" not in v, (tag, v)
            assert not k.startswith("on"), (tag, k)
    css = "".join(page.styles)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "@media print" in css
    assert not re.search(r"(?i)\b(?:https?|ftp|file):|//[a-z0-9]", text.replace(str(out), "")), \
        re.search(r"(?i)\b(?:https?|ftp|file):|//[a-z0-9]", text).group(0)
    # Every url() in SVG attributes points inside the page (the fp32 hatch pattern).
    for u in re.findall(r"url\(([^)]*)\)", text):
        assert u.startswith("#"), u
    # The summary says what report.json says.
    body = "".join(page.texts)
    assert "Budget NOT met" in body and "%.4f" % rep["int8_score"] in body and "0.9500" in body
    assert FORCED in body and "auto mode: %d round(s)" % rep["rounds"] in body


# ------------------------------------------------------------------ Chromium

@pytest.fixture(scope="module")
def chromium():
    """The browser, looked up before the search runs so that its absence skips at once."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is absent (Debian package chromium, listed in scripts/apt-packages.txt): "
                "report.html is not rendered")


def run_chromium(exe, profile, *args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--user-data-dir=%s" % profile] + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def near(colours, rgb, tol=10):
    return sum(n for n, c in colours if all(abs(a - b) <= tol for a, b in zip(c[:3], rgb)))


def test_report_renders_in_headless_chromium(chromium, search, tmp_path):
    exe = chromium
    Image = pytest.importorskip("PIL.Image", reason="Pillow is needed to look at the screenshot")
    out, _, rep = search
    url = "file://" + str(out / "report.html")
    shot = tmp_path / "report.png"
    p = run_chromium(exe, tmp_path / "profile", "--window-size=1200,3200", "--screenshot=%s" % shot, url)
    assert p.returncode == 0 and shot.exists(), p.stderr.decode(errors="replace")[-2000:]
    im = Image.open(shot).convert("RGB")
    grey = list(im.convert("L").getdata())
    mean = sum(grey) / len(grey)
    variance = sum((g - mean) ** 2 for g in grey) / len(grey)
    assert variance > 200, "the screenshot is (nearly) blank: variance %.1f" % variance
    colours = im.getcolors(maxcolors=1 << 22)
    # The charts' own colours: cosine bars, SQNR bars (red, amber or green by level) with the
    # red of the failing candidates' marks, the fp32 hatch.
    assert near(colours, (0x4a, 0x78, 0xb0)) > 500, "no cosine bars"
    sqnr = sum(near(colours, c) for c in ((0xd9, 0x53, 0x4f), (0xe0, 0xa0, 0x30), (0x3a, 0x9a, 0x55)))
    assert sqnr > 500, "no SQNR bars"
    assert near(colours, (0xf3, 0xe3, 0xc8), 6) + near(colours, (0x8a, 0x5a, 0x14), 12) > 50, "no fp32 marking"
    # The DOM Chromium built holds the same charts and rows.
    p = run_chromium(exe, tmp_path / "profile", "--dump-dom", url)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    check_report_tree(Page(p.stdout.decode("utf-8")), rep)
    # Printing works (the print styles keep the colours and break tables cleanly).
    pdf = tmp_path / "report.pdf"
    p = run_chromium(exe, tmp_path / "profile", "--print-to-pdf=%s" % pdf, url)
    assert p.returncode == 0 and pdf.exists() and pdf.read_bytes()[:5] == b"%PDF-", p.stderr[-2000:]


# ------------------------------------------------------------------ progress and summary

def test_progress_lines_and_summary_when_not_a_terminal(search):
    out, stdout, rep = search
    assert "\r" not in stdout
    lines = stdout.rstrip("\n").split("\n")
    started = {m.group(1) for m in (re.fullmatch(STAMP + r"(.+): (\d+) (tasks|samples)", l) for l in lines) if m}
    ended = {m.group(1) for m in (re.fullmatch(STAMP + r"(.+): (\d+)/\2 (tasks|samples)  (?:[\d.]+/s  )?in [\d.]+s", l)
                                  for l in lines) if m}
    phases = {"calibration (range pass)", "calibration (histogram pass)", "calibration (KL tuning)",
              "round 1: 9 candidate(s) on the subset", "round 2: 1 candidate(s)",
              "per-layer statistics of the chosen plan"}
    assert phases <= started and phases <= ended, (started, ended)
    # Each round of subset probes (the screen, the removal probes) is one phase and one summary line.
    probes = collections.Counter(c["round"] for c in rep["candidates"] if "subset_score" in c)
    assert probes, rep["candidates"]
    for r, n in probes.items():
        assert "round %d: %d candidate(s) on the subset" % (r, n) in started, (r, n, started)
    # The summary: every candidate not a probe, the chosen one marked, the probes on one line.
    head = lines.index(next(l for l in lines if l.startswith("search (auto mode): ")))
    assert "%d candidate(s) in %d round(s)" % (len(rep["candidates"]), rep["rounds"]) in lines[head]
    table = lines[head + 2:]
    chosen = rep["candidates"][rep["chosen_candidate"]]
    assert [l for l in table if l.endswith("<- chosen")][0].split()[0] == str(rep["chosen_candidate"] + 1)
    assert chosen["name"] in [l for l in table if l.endswith("<- chosen")][0]
    for r, n in probes.items():
        assert any(re.search(r"\b%d +%d probe\(s\) scored on the subset" % (r, n), l) for l in table), (r, n, table)
    assert any("fail (decided)" in l for l in table)
    for c in rep["candidates"]:
        if "subset_score" not in c and c["int8_score"] is not None:
            assert any(c["name"] in l and "%.4f" % c["int8_score"] in l for l in table), c["name"]
    assert "  %s/report.html " % out in stdout and "  %s/report.json " % out in stdout
    assert lines[-1].startswith("classify: fp32 0.9500") and lines[-1].endswith("artefacts in %s" % out)


def run_in_pty(cmd, cols=120):
    """Runs cmd with stdout and stderr on a pseudo-terminal cols wide; returns (status, text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, cols, 0, 0))
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:          # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(), b"".join(chunks).decode("utf-8", errors="replace")


def test_progress_bar_on_a_terminal(ac_bin, tmp_path):
    status, text = run_in_pty(quantize_cmd(ac_bin, tmp_path / "out"))
    assert status == 0, text[-3000:]
    text = text.replace("\r\n", "\n")   # the terminal's own line ends; what is left are redraws
    assert text.endswith("\n") and "\r" in text
    bars = {}
    for line in text.split("\n"):
        if "\r" not in line:
            continue
        frames = [f for f in line.split("\r") if f]
        assert all(len(f.rstrip()) <= 119 for f in frames), max(frames, key=len)
        last = re.fullmatch(STAMP + r"(.+) \[(#{24})\]  (\d+)/\3 (tasks|samples)  [\d.]+/s  in [\d.]+s *", frames[-1])
        assert last, "a bar that did not end complete: %r" % frames[-1]
        assert re.match(STAMP + r".+ \[-{24}\]  0/\d+ ", frames[0]), frames[0]
        bars[last.group(1)] = frames
    phases = {"calibration (range pass)", "calibration (histogram pass)", "calibration (KL tuning)",
              "fp32 scoring", "round 1: 9 candidate(s) on the subset", "round 2: 1 candidate(s)",
              "per-layer statistics of the chosen plan"}
    assert phases <= set(bars), sorted(bars)
    # The counts go up; a frame part of the way shows a rate and an ETA.
    for what, frames in bars.items():
        counts = [tuple(map(int, re.search(r"\]  (\d+)/(\d+) ", f).groups())) for f in frames]
        assert counts == sorted(counts), (what, counts)
        for f, (done, total) in zip(frames, counts):
            assert not 0 < done < total or re.search(r"  [\d.]+/s  ETA \d", f), (what, f)
    assert "<- chosen" in text and "/report.html" in text
    assert text.rstrip("\n").split("\n")[-1].startswith("classify: fp32 ")


def test_quiet_prints_only_the_final_line(ac_bin, tmp_path):
    p = run(quantize_cmd(ac_bin, tmp_path / "out", "--quiet"))
    assert p.stderr == ""
    assert p.stdout.count("\n") == 1 and p.stdout.startswith("classify: fp32 "), p.stdout
    assert (tmp_path / "out" / "report.html").exists()


def test_verbose_adds_the_per_layer_plan(ac_bin, tmp_path):
    rep_names = None
    for extra in ([], ["--verbose"]):
        out = tmp_path / ("v" if extra else "plain")
        p = run(quantize_cmd(ac_bin, out, "--no_search", *extra))
        layers = json.load(open(out / "report.json"))["layers"]
        rep_names = [l["name"] for l in layers]
        plan_lines = [l for l in p.stdout.split("\n")
                      if l.split() and l.split()[0] in rep_names and re.search(r"\b(int8|fp32)\b", l)]
        assert len(plan_lines) == (len(rep_names) if extra else 0), p.stdout
        assert "artefacts in %s:" % out in p.stdout and p.stdout.rstrip().split("\n")[-1].startswith("classify:")
