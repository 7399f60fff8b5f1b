"""The tags on regbatch's Prefect deployments and flow runs.

Every flow run carries `regbatch`; a batch's flow run also carries `regbatch-batch`, a
restaurant's (subflow or deployment run) `regbatch-restaurant` and never `regbatch-batch`, so a
saved filter on the Prefect UI's Runs page (tag `regbatch-batch`) lists batches without their
restaurants. The steps' task runs carry no tag (`runner.prefect_runs.untagged`): Prefect would
ask its server for tag concurrency slots at the start of every tagged task run.
"""

from __future__ import annotations

PRODUCT_TAG = "regbatch"
BATCH_TAG = "regbatch-batch"
RESTAURANT_TAG = "regbatch-restaurant"
KIND_TAGS = (BATCH_TAG, RESTAURANT_TAG)
