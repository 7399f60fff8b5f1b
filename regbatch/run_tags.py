"""The tags on regbatch's Prefect deployments and flow runs.

Every run carries `regbatch`; a batch's flow run also carries `regbatch-batch`, a restaurant's
(subflow or deployment run) `regbatch-restaurant` and never `regbatch-batch`, so a saved filter
on the Prefect UI's Runs page (tag `regbatch-batch`) lists batches without their restaurants.
"""

from __future__ import annotations

PRODUCT_TAG = "regbatch"
BATCH_TAG = "regbatch-batch"
RESTAURANT_TAG = "regbatch-restaurant"
KIND_TAGS = (BATCH_TAG, RESTAURANT_TAG)
