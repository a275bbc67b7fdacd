#!/usr/bin/python3
"""Regenerates the codec fuzz seed corpus from the test vectors.

Writes one binary file per valid or lenient vector of tests/vectors/*.txt (format documented
at the top of each vector file) to tests/fuzz/corpus/codec/<group>-<n>.bin, after removing the
old *.bin files there. Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.join(ROOT, "tests", "vectors")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus", "codec")


def vectors(path):
    """Yields (kind, bytes) for each vector line of one file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            kind, rest = fields[0], fields[3:]
            if rest and rest[0].startswith("max="):
                rest = rest[1:]
            yield kind, bytes.fromhex("".join(rest))


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "*.bin")):
        os.remove(old)
    count = 0
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.txt"))):
        group = os.path.splitext(os.path.basename(path))[0]
        n = 0
        for kind, data in vectors(path):
            if kind not in ("valid", "lenient"):
                continue
            n += 1
            with open(os.path.join(OUT, "%s-%03d.bin" % (group, n)), "wb") as f:
                f.write(data)
            count += 1
    print("wrote %d seeds to %s" % (count, OUT))


if __name__ == "__main__":
    main()
