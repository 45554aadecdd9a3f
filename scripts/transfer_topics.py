#!/usr/bin/env python
"""Does a headline recipe transfer? Train on four BBC topics, test on the fifth, each topic in turn.

    python scripts/transfer_topics.py                          # the default recipe, all five topics
    python scripts/transfer_topics.py --topics tech sports     # a part; a rerun resumes
    python scripts/transfer_topics.py --way prefix-next-token --max-source-length 128

Every recipe flag of train_summarization.py applies. Each topic's result is written to
OUTPUT/transfer/TOPIC/ when it is finished; the report, OUTPUT/transfer.md (.json, .png), is
assembled from every result there. The library: genbert.recipes.transfer.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from genbert.recipes import transfer  # noqa: E402

if __name__ == "__main__":
    sys.exit(transfer.main(prog="transfer_topics.py", doc=__doc__))
